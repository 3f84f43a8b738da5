import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type tls from 'node:tls';
import type net from 'node:net';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import WebSocket, { WebSocketServer } from 'ws';

/**
 * Fake upstream nodes that record what they receive: an aggregate (gRPC CommandService), a
 * projection (HTTP query + WebSocket echo) and a runner (HTTP echo). Used by the proxy tests,
 * the proxy benchmark and `npm run dev:upstreams`.
 */

/** Server side of upstream mTLS: the fake serves TLS with `cert`/`key` and requires a client certificate `ca` vouches for. */
export interface FakeServerTls {
  ca: string;
  cert: string;
  key: string;
}

/** proto/ found by walking up from here (works from test/support and from a compiled copy). */
export function commandProtoPath(): string {
  let directory = __dirname;
  for (let depth = 0; depth < 8; depth += 1) {
    const candidate = path.join(directory, 'proto', 'aggregate', 'gateway', 'v1', 'command_service.proto');
    if (fs.existsSync(candidate)) return candidate;
    directory = path.dirname(directory);
  }
  return path.resolve(process.cwd(), 'proto', 'aggregate', 'gateway', 'v1', 'command_service.proto');
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loaded = any;

export function commandServiceDefinition(): Loaded {
  const definition = protoLoader.loadSync(commandProtoPath(), {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return (grpc.loadPackageDefinition(definition) as Loaded).aggregate.gateway.v1.CommandService;
}

export interface RecordedCommand {
  request: {
    aggregate_type: string;
    aggregate_id: string;
    command_id: string;
    command_type: string;
    payload: Buffer;
    expected_version?: string;
  };
  metadata: Record<string, string>;
  /** ms the client left until its deadline, as the server saw it */
  deadlineInMs: number | undefined;
}

/** The standard gRPC health service (`grpc.health.v1.Health`), as Gatehouse asks it (CONTRACT §11). */
export function healthServiceDefinition(): Loaded {
  // proto/aggregate/gateway/v1/command_service.proto → proto/grpc/health/v1/health.proto
  const file = path.resolve(commandProtoPath(), '..', '..', '..', '..', 'grpc', 'health', 'v1', 'health.proto');
  const definition = protoLoader.loadSync(file, { keepCase: true, enums: String, defaults: true });
  return (grpc.loadPackageDefinition(definition) as Loaded).grpc.health.v1.Health;
}

export type ServingStatus = 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN' | 'UNKNOWN';

export interface RecordedHealthCheck {
  service: string;
  metadata: Record<string, string>;
}

export interface FakeAggregate {
  name: string;
  port: number;
  endpoint: string;
  calls: RecordedCommand[];
  healthChecks: RecordedHealthCheck[];
  /**
   * Per tenant, what `Health/Check` of `aggregate.tenant.<tenant>` answers (tests set it);
   * tenants not listed get `defaultStatus`. `healthDelayMs` delays every answer.
   */
  health: { tenants: Record<string, ServingStatus>; defaultStatus: ServingStatus; delayMs: number };
  state: { failNext: number; delayMs: number; errorCode?: number; errorDetails?: string };
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** gRPC CommandService answering version 7 and one event echoing the payload. */
export async function fakeAggregate(name = 'agg', port = 0, options: { tls?: FakeServerTls } = {}): Promise<FakeAggregate> {
  const Service = commandServiceDefinition();
  const Health = healthServiceDefinition();
  const calls: RecordedCommand[] = [];
  const healthChecks: RecordedHealthCheck[] = [];
  const health: FakeAggregate['health'] = { tenants: {}, defaultStatus: 'SERVING', delayMs: 0 };
  const state: FakeAggregate['state'] = { failNext: 0, delayMs: 0 };
  let server: grpc.Server | undefined;
  const fake: FakeAggregate = {
    name,
    port,
    endpoint: '',
    calls,
    healthChecks,
    health,
    state,
    async start() {
      server = new grpc.Server();
      server.addService(Health.service, {
        Check: (call: grpc.ServerUnaryCall<{ service: string }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
          const metadata: Record<string, string> = {};
          for (const [key, value] of Object.entries(call.metadata.getMap())) metadata[key] = value.toString();
          healthChecks.push({ service: call.request.service, metadata });
          const tenant = /^aggregate\.tenant\.(.+)$/.exec(call.request.service)?.[1];
          const answer = () => {
            if (tenant === undefined) {
              callback({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
              return;
            }
            callback(null, { status: health.tenants[tenant] ?? health.defaultStatus });
          };
          if (health.delayMs > 0) setTimeout(answer, health.delayMs);
          else answer();
        },
      });
      server.addService(Service.service, {
        SubmitCommand: (call: grpc.ServerUnaryCall<RecordedCommand['request'], unknown>, callback: grpc.sendUnaryData<unknown>) => {
          const metadata: Record<string, string> = {};
          for (const [key, value] of Object.entries(call.metadata.getMap())) metadata[key] = value.toString();
          const deadline = call.getDeadline();
          const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
          calls.push({ request: call.request, metadata, deadlineInMs: Number.isFinite(deadlineMs) ? deadlineMs - Date.now() : undefined });
          if (state.failNext > 0) {
            state.failNext -= 1;
            callback({ code: grpc.status.UNAVAILABLE, details: 'warming up' });
            return;
          }
          if (state.errorCode !== undefined) {
            callback({ code: state.errorCode, details: state.errorDetails ?? 'refused' });
            return;
          }
          const request = call.request;
          const reply = () =>
            callback(null, {
              aggregate_id: request.aggregate_id,
              version: '7',
              events: [
                {
                  event_id: `${name}-${request.command_id}`,
                  event_type: `${request.command_type}.done`,
                  version: '7',
                  payload: Buffer.from(JSON.stringify({ served_by: name, echo: JSON.parse(request.payload.toString() || 'null') })),
                },
              ],
            });
          if (state.delayMs > 0) setTimeout(reply, state.delayMs);
          else reply();
        },
      });
      fake.port = await new Promise<number>((resolve, reject) =>
        server!.bindAsync(`127.0.0.1:${fake.port}`, serverCredentials(options.tls), (error, bound) =>
          error ? reject(error) : resolve(bound),
        ),
      );
      fake.endpoint = `127.0.0.1:${fake.port}`;
    },
    stop() {
      const current = server;
      server = undefined;
      if (current === undefined) return Promise.resolve();
      current.forceShutdown();
      return Promise.resolve();
    },
  };
  await fake.start();
  return fake;
}

export interface RecordedHttp {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** CN of the client certificate, when the fake serves TLS */
  clientCert?: string;
  /** the server name the client sent (SNI), when the fake serves TLS; false when it sent none */
  serverName?: string | false;
}

function serverCredentials(options: FakeServerTls | undefined): grpc.ServerCredentials {
  if (options === undefined) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(
    fs.readFileSync(options.ca),
    [{ cert_chain: fs.readFileSync(options.cert), private_key: fs.readFileSync(options.key) }],
    true,
  );
}

function clientCertOf(request: http.IncomingMessage): string | undefined {
  const socket = request.socket as tls.TLSSocket;
  if (typeof socket.getPeerCertificate !== 'function') return undefined;
  const subject = socket.getPeerCertificate().subject as { CN?: string } | undefined;
  return subject?.CN;
}

function serverNameOf(request: http.IncomingMessage): string | false | undefined {
  const socket = request.socket as tls.TLSSocket;
  return typeof socket.getPeerCertificate === 'function' ? (socket.servername ?? false) : undefined;
}

/** What `GET /v1/readiness/{tenant_id}` answers for a tenant (200 when ready, else 503). */
export interface FakeReadiness {
  ready: boolean;
  reason?: string;
  lag?: number;
}

export interface FakeHttp {
  name: string;
  port: number;
  endpoint: string;
  calls: RecordedHttp[];
  /** per tenant, set by tests; tenants not listed get `defaultReadiness` */
  readiness: { tenants: Record<string, FakeReadiness>; defaultReadiness: FakeReadiness; delayMs: number };
  /** every message the WebSocket side received */
  received: string[];
  sockets: Set<WebSocket>;
  state: {
    delayMs: number;
    status: number;
    body: string | null;
    /** 'reset' destroys the connection on receipt, 'garbage' answers with bytes that are not HTTP */
    fault?: 'reset' | 'garbage';
  };
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * HTTP echo (`{served_by, method, url, body}`) with a hop-by-hop header that must not reach
 * clients, and a WebSocket echo on /v1/subscribe/* (text frames come back as `<name>:<text>`).
 */
export async function fakeHttp(name = 'proj', port = 0, options: { tls?: FakeServerTls } = {}): Promise<FakeHttp> {
  const calls: RecordedHttp[] = [];
  const received: string[] = [];
  const sockets = new Set<WebSocket>();
  const connections = new Set<net.Socket>();
  const state: FakeHttp['state'] = { delayMs: 0, status: 200, body: null };
  const readiness: FakeHttp['readiness'] = { tenants: {}, defaultReadiness: { ready: true }, delayMs: 0 };
  let server: http.Server | https.Server | undefined;
  const fake: FakeHttp = {
    name,
    port,
    endpoint: '',
    calls,
    readiness,
    received,
    sockets,
    state,
    async start() {
      const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 * 1024 });
      const handler: http.RequestListener = (request, response) => {
        const chunks: Buffer[] = [];
        request.on('data', (chunk: Buffer) => chunks.push(chunk));
        request.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          calls.push({
            method: request.method ?? '',
            url: request.url ?? '',
            headers: request.headers,
            body,
            clientCert: clientCertOf(request),
          });
          if (state.fault === 'reset') {
            request.socket.destroy();
            return;
          }
          if (state.fault === 'garbage') {
            request.socket.end('THIS IS NOT HTTP\r\n\r\n');
            return;
          }
          const readinessOf = /^\/v1\/readiness\/([^/?]+)$/.exec(request.url ?? '')?.[1];
          if (request.method === 'GET' && readinessOf !== undefined) {
            const tenant = decodeURIComponent(readinessOf);
            const answer = readiness.tenants[tenant] ?? readiness.defaultReadiness;
            const reply = () => {
              response.writeHead(answer.ready ? 200 : 503, { 'content-type': 'application/json' });
              response.end(
                JSON.stringify({ tenant_id: tenant, ...answer, reason: answer.ready ? undefined : (answer.reason ?? 'not ready') }),
              );
            };
            if (readiness.delayMs > 0) setTimeout(reply, readiness.delayMs);
            else reply();
            return;
          }
          const send = () => {
            let parsed: unknown = null;
            try {
              parsed = body === '' ? null : JSON.parse(body);
            } catch {
              parsed = body;
            }
            const out = state.body ?? JSON.stringify({ served_by: name, method: request.method, url: request.url, body: parsed });
            response.writeHead(state.status, {
              'content-type': 'application/json',
              connection: 'keep-alive, x-upstream-hop',
              'keep-alive': 'timeout=30',
              'x-upstream-hop': 'secret-hop',
              'x-served-by': name,
            });
            response.end(out);
          };
          if (state.delayMs > 0) setTimeout(send, state.delayMs);
          else send();
        });
      };
      const secure = options.tls;
      server =
        secure === undefined
          ? http.createServer(handler)
          : https.createServer(
              {
                ca: fs.readFileSync(secure.ca),
                cert: fs.readFileSync(secure.cert),
                key: fs.readFileSync(secure.key),
                requestCert: true,
                rejectUnauthorized: true,
              },
              handler,
            );
      server.on('connection', (socket) => {
        connections.add(socket);
        socket.on('close', () => connections.delete(socket));
      });
      server.on('upgrade', (request, socket, head) => {
        calls.push({
          method: 'WS',
          url: request.url ?? '',
          headers: request.headers,
          body: '',
          clientCert: clientCertOf(request),
          serverName: serverNameOf(request),
        });
        wss.handleUpgrade(request, socket, head, (ws) => {
          sockets.add(ws);
          ws.on('message', (message, isBinary) => {
            if (!isBinary) received.push(message.toString());
            ws.send(isBinary ? message : `${name}:${message.toString()}`, { binary: isBinary });
          });
          ws.on('close', () => sockets.delete(ws));
        });
      });
      await new Promise<void>((resolve) => server!.listen(fake.port, '127.0.0.1', resolve));
      fake.port = (server.address() as net.AddressInfo).port;
      fake.endpoint = `127.0.0.1:${fake.port}`;
    },
    async stop() {
      const current = server;
      server = undefined;
      if (current === undefined) return;
      for (const socket of sockets) socket.terminate();
      for (const socket of connections) socket.destroy();
      await new Promise<void>((resolve) => current.close(() => resolve()));
    },
  };
  await fake.start();
  return fake;
}

/** A gRPC client of the CommandService (Gatehouse's or a fake's). */
export function commandClient(port: number): grpc.Client & Loaded {
  const Service = commandServiceDefinition();
  return new Service(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
}

export interface SubmitResult {
  error: grpc.ServiceError | null;
  response: Loaded;
}

export function submitCommand(
  client: Loaded,
  request: object,
  metadata: Record<string, string> = {},
  deadlineMs = 5000,
): Promise<SubmitResult> {
  const md = new grpc.Metadata();
  for (const [key, value] of Object.entries(metadata)) md.set(key, value);
  return new Promise((resolve) => {
    client.SubmitCommand(request, md, { deadline: Date.now() + deadlineMs }, (error: grpc.ServiceError | null, response: Loaded) =>
      resolve({ error, response }),
    );
  });
}

export { grpc, WebSocket };
