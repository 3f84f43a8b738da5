import crypto from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls, { type SecureContext, type TLSSocket } from 'node:tls';
import { Inject, Injectable } from '@nestjs/common';
import { AppError } from '../common/app-error';
import type { RequestContext } from '../common/request-context';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { MetricsService } from '../observability/metrics.service';
import { RoutingService } from '../routing/routing.service';
import type { Principal } from '../session/principal';
import { EndpointBreakers } from './endpoint-breakers.service';
import { InternalTokenService } from './internal-token.service';
import { acceptKey } from './subscription-frames';
import { HopFailure, classifyHopError } from './upstream-failure';
import { forwardableRequestHeaders, identityHeaders, type HeaderMap } from './upstream-headers';
import { UpstreamTls } from './upstream-tls';

export interface UpstreamSocketRequest {
  viewType: string;
  query: string;
  tenantId: string;
  principal: Principal;
  context: RequestContext;
  inboundHeaders: HeaderMap;
}

/** The upstream refused the handshake with a well-formed HTTP answer, relayed as it is. */
export interface UpstreamRefusal {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** The upstream's TCP (or TLS) stream after its 101, and the bytes it sent along with the 101. */
export interface UpstreamSocket {
  socket: Duplex;
  head: Buffer;
}

/** `shardId`: the shard the socket went to, so a rebalancing of the tenant can close it (1012). */
export type UpstreamSocketResult =
  { socket: UpstreamSocket; upstream: string; shardId: string } | { refusal: UpstreamRefusal; upstream: string; shardId: string };

const MAX_REFUSAL_BODY = 64 * 1024;

/** Opens the projection WebSocket for a subscription, through the endpoint breakers. */
@Injectable()
export class UpstreamSocketConnector {
  constructor(
    private readonly routing: RoutingService,
    private readonly breakers: EndpointBreakers,
    private readonly tokens: InternalTokenService,
    private readonly metrics: MetricsService,
    private readonly tls: UpstreamTls,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async connect(request: UpstreamSocketRequest): Promise<UpstreamSocketResult> {
    const shard = this.routing.resolve('projection', request.tenantId);
    const internalToken = await this.tokens.mint('projection', request.principal, request.tenantId);
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(forwardableRequestHeaders(request.inboundHeaders))) {
      // the client's subprotocols may carry its token; `open` sets the handshake's own headers
      if (!name.startsWith('sec-websocket-')) headers[name] = value;
    }
    Object.assign(
      headers,
      identityHeaders({ principal: request.principal, tenantId: request.tenantId, internalToken, context: request.context }),
    );
    const path = `/v1/subscribe/${encodeURIComponent(request.viewType)}${request.query}`;
    let lastError: unknown;
    for (const endpoint of this.breakers.plan(shard)) {
      const upstream = `projection ${shard.shardId} ${endpoint}`;
      try {
        const result = await this.breakers.run('projection', endpoint, () =>
          this.open(`${this.tls.scheme('ws')}://${endpoint}${path}`, headers),
        );
        this.metrics.upstreamRequests.inc({ service_kind: 'projection', outcome: 'socket' in result ? 'ok' : 'error_reply' });
        return { ...result, upstream, shardId: shard.shardId };
      } catch (error) {
        lastError = error;
        if (error instanceof AppError && error.code === 'circuit_open') {
          this.metrics.upstreamRequests.inc({ service_kind: 'projection', outcome: 'circuit_open' });
          continue;
        }
        if (!(error instanceof HopFailure)) throw error;
        this.metrics.upstreamRequests.inc({ service_kind: 'projection', outcome: error.kind });
        request.context.upstream = `${upstream} failed: ${error.reason}`;
        // a handshake has no effect upstream: any endpoint may be tried, timeouts excepted
        if (error.kind === 'timeout') break;
      }
    }
    if (lastError instanceof HopFailure) throw lastError.toAppError();
    throw lastError;
  }

  /**
   * The upstream's opening handshake, done with plain `http`/`https` (no WebSocket library): no
   * extension and no subprotocol is offered, so the frames the client sends (masked) and the
   * upstream sends (unmasked) are valid on the other leg byte for byte, and the relay copies the
   * streams without parsing messages.
   */
  private open(
    url: string,
    headers: Record<string, string | string[]>,
  ): Promise<{ socket: UpstreamSocket } | { refusal: UpstreamRefusal }> {
    return new Promise((resolve, reject) => {
      const material = this.tls.material();
      const key = crypto.randomBytes(16).toString('base64');
      const options = handshakeRequestOptions(url, headers, key, material?.secureContext);
      const request = material === undefined ? http.request(options) : https.request(options);
      let settled = false;
      const fail = (error: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        request.destroy();
        reject(error instanceof HopFailure ? error : classifyHopError(error));
      };
      const timer = setTimeout(
        () => fail(new HopFailure('timeout', 'connect', 'websocket handshake: timed out')),
        this.config.UPSTREAM_TIMEOUT_MS,
      );
      request.once('error', fail);
      request.once('upgrade', (response: http.IncomingMessage, socket: Duplex, head: Buffer) => {
        if (settled) return socket.destroy();
        const problem = handshakeProblem(response, key);
        if (problem !== undefined) {
          socket.destroy();
          return fail(new HopFailure('unavailable', 'sent', `websocket handshake: ${problem}`));
        }
        settled = true;
        clearTimeout(timer);
        // the relay attaches its own handlers; until then an error must not go unheard
        socket.on('error', () => undefined);
        resolve({ socket: { socket, head } });
      });
      request.once('response', (response: http.IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size <= MAX_REFUSAL_BODY) chunks.push(chunk);
        });
        response.on('end', () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          const relayed: Record<string, string> = {};
          const contentType = response.headers['content-type'];
          if (contentType !== undefined) relayed['content-type'] = contentType;
          const body = Buffer.concat(chunks);
          relayed['content-length'] = String(body.length);
          request.destroy();
          resolve({ refusal: { status: response.statusCode ?? 502, headers: relayed, body } });
        });
        response.on('error', fail);
      });
      request.end();
    });
  }
}

/**
 * The request options of an upstream's opening handshake. Plaintext: `http`'s own connection,
 * outside any pool. TLS: a `tls.connect` of our own with the shared SecureContext and no agent
 * (a per-request agent's session-cache listener kept the request alive as long as the relay).
 * Without an agent Node knows no default port, so it is given: `Host` is `h` for `wss://h` and
 * `wss://h:443`, `h:8443` for `wss://h:8443`, as an agent would write it.
 */
export function handshakeRequestOptions(
  url: string,
  headers: Record<string, string | string[]>,
  key: string,
  secureContext: SecureContext | undefined,
): https.RequestOptions {
  const target = new URL(url);
  // an IPv6 endpoint is bracketed in the URL, not in a host name
  const host = target.hostname.replace(/^\[(.*)\]$/, '$1');
  const defaultPort = secureContext === undefined ? 80 : 443;
  const port = Number(target.port) || defaultPort;
  const options: https.RequestOptions = {
    host,
    port,
    defaultPort,
    path: `${target.pathname}${target.search}`,
    headers: { ...headers, connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': key },
  };
  if (secureContext === undefined) {
    // an upgraded connection leaves any pool: one connection per subscription
    return { ...options, agent: false };
  }
  return { ...options, createConnection: () => tlsConnection(host, port, secureContext) };
}

/**
 * The TLS connection of one upstream socket, opened as `https`'s agent would (SNI for a host
 * name, none for an IP; no Nagle delay) but without an agent: `agent: false` made a new
 * `https.Agent` per request, whose TLS session cache listener on the socket kept the handshake's
 * ClientRequest, response, agent and session for as long as the relay lived (about 14 KB of heap
 * per idle socket), for a cache no later request could use.
 */
function tlsConnection(host: string, port: number, secureContext: SecureContext): TLSSocket {
  const socket = tls.connect({
    host,
    port,
    servername: net.isIP(host) === 0 ? host : undefined,
    secureContext,
    rejectUnauthorized: true,
  });
  socket.setNoDelay(true);
  return socket;
}

/** What is wrong with an upstream's 101 for a relay that copies frames as they are, if anything. */
function handshakeProblem(response: http.IncomingMessage, key: string): string | undefined {
  if (response.headers.upgrade?.toLowerCase() !== 'websocket') return 'not a websocket upgrade';
  if (response.headers['sec-websocket-accept'] !== acceptKey(key)) return 'wrong Sec-WebSocket-Accept';
  // nothing was offered: an extension (compression) or subprotocol would change what frames mean
  if (response.headers['sec-websocket-extensions'] !== undefined) return 'an extension that was not offered';
  if (response.headers['sec-websocket-protocol'] !== undefined) return 'a subprotocol that was not offered';
  return undefined;
}
