import { randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { refuseUnverifiedClientCertificates } from './client-certificate';
import type { AddressInfo } from 'node:net';
import { problemOf, PROBLEM_CONTENT_TYPE } from '../common/problem-details';
import { readBuildInfo } from './build-info';
import { serverTimeouts } from './request-timeout';
import { startup } from './startup';

/** How long an idle keep-alive connection is kept open (Fastify's default). */
const KEEP_ALIVE_TIMEOUT_MS = 72_000;

type Handler = (request: http.IncomingMessage, response: http.ServerResponse) => void;

export interface BootListener {
  readonly server: http.Server;
  readonly port: number;
  /**
   * Fastify's `serverFactory`: hands this server (already listening) to Fastify. Start-up
   * answers keep coming until Fastify "listens", which then only switches the request handler:
   * the port is never closed and reopened, so no connection is refused in between.
   */
  adopt(handler: Handler): http.Server;
  close(): Promise<void>;
}

export interface BootListenerOptions {
  port: number;
  host: string;
  /** NATS configured at all (its check is "disabled" otherwise) */
  nats: boolean;
  /** serve HTTPS (CONTRACT §13: TLS_CERT_FILE/TLS_KEY_FILE, client certificates) */
  https?: https.ServerOptions;
  /** REQUEST_TIMEOUT_MS: applied from creation, since Fastify adopts this server as it is */
  requestTimeoutMs: number;
}

/**
 * The HTTP listener of the process from its first moment (CONTRACT §8): while the
 * application starts — possibly waiting for the database or NATS — `/health` answers 200 and
 * says what start-up waits for, `/ready` answers 503 `unready`, and anything else 503
 * `unavailable` with Retry-After. Once the application is built the same server serves it.
 */
export async function startBootListener(options: BootListenerOptions): Promise<BootListener> {
  const build = readBuildInfo();
  const startingHandler: Handler = (request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    const waitingFor = startup.waitingFor();
    const send = (status: number, body: object, contentType = 'application/json; charset=utf-8', extra: Record<string, string> = {}) => {
      const text = JSON.stringify(body);
      response.writeHead(status, {
        'content-type': contentType,
        'content-length': Buffer.byteLength(text),
        'cache-control': 'no-store',
        ...extra,
      });
      response.end(text);
    };
    if (request.method === 'GET' && path === '/health') {
      send(200, { status: 'ok', starting: true, waiting_for: waitingFor, ...build, node: process.version });
    } else if (request.method === 'GET' && path === '/ready') {
      send(503, {
        status: 'unready',
        checks: {
          database: waitingFor.includes('database') ? 'failing' : 'ok',
          nats: !options.nats ? 'disabled' : waitingFor.includes('nats') ? 'failing' : 'ok',
          started: 'failing',
        },
      });
    } else {
      const requestId = randomUUID();
      const detail = waitingFor.length > 0 ? `starting: waiting for ${waitingFor.join(', ')}` : 'starting';
      send(503, problemOf('unavailable', requestId, detail), PROBLEM_CONTENT_TYPE, { 'retry-after': '1', 'x-request-id': requestId });
    }
    request.resume();
  };

  const timeouts = serverTimeouts(options.requestTimeoutMs);
  const tls = options.https;
  // https.Server answers requests exactly like http.Server; Fastify's factory takes either
  const server = (
    tls === undefined ? http.createServer(timeouts, startingHandler) : https.createServer({ ...tls, ...timeouts }, startingHandler)
  ) as http.Server;
  if (tls?.requestCert === true && tls.rejectUnauthorized === false) refuseUnverifiedClientCertificates(server as unknown as https.Server);
  // Fastify's own default (72 s), which its serverFactory option bypasses: Node's 5 s would close
  // an idle keep-alive connection while an edge (nginx keeps upstream connections 60 s, most load
  // balancers 60 s) still counts on it, and its next request would hit the closing socket
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: options.port, host: options.host }, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  return {
    server,
    port,
    adopt(handler) {
      // Fastify calls listen() on the server its factory returned; this one already listens,
      // so that call only switches the handler and reports "listening" as a fresh bind would
      const listening = server;
      listening.listen = ((...args: unknown[]) => {
        listening.removeListener('request', startingHandler);
        listening.on('request', handler);
        const callback = args.find((arg): arg is () => void => typeof arg === 'function');
        process.nextTick(() => {
          listening.emit('listening');
          callback?.();
        });
        return listening;
      }) as typeof server.listen;
      return listening;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
