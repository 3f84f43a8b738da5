import { randomUUID } from 'node:crypto';
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { Logger } from 'pino';
import WebSocket, { WebSocketServer, type RawData } from 'ws';
import { RequestAuthorizer } from '../authz/request-authorizer.service';
import { AppError } from '../common/app-error';
import { requestContext, type RequestContext } from '../common/request-context';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { LOGGER } from '../observability/logger';
import { MetricsService } from '../observability/metrics.service';
import { acceptCorrelationId, continueTrace } from '../observability/trace-context';
import {
  SUBSCRIBE_DECLARATION,
  SUBSCRIBE_PATH,
  handshakeAuthorization,
  handshakeTenant,
  matchSubscribePath,
  refuseHandshake,
  writeRawResponse,
  type SubscribeTarget,
} from './subscription-handshake';
import { CLOSE_INTERNAL_ERROR, CLOSE_POLICY_VIOLATION, SubscriptionRegistry, type LiveSubscription } from './subscription-registry';
import { UpstreamSocketConnector } from './upstream-socket.connector';

/** A side whose peer has this much unsent is paused until the peer drains below LOW_WATER. */
const HIGH_WATER = 1024 * 1024;
const LOW_WATER = 256 * 1024;
const SHUTDOWN_CLOSE_WAIT_MS = 1000;

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** Seconds-since-epoch `exp` of an already verified JWT. */
function tokenExpiry(authorization: string): number | undefined {
  try {
    const payload = authorization.replace(/^Bearer\s+/i, '').split('.')[1] ?? '';
    const exp = (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp : undefined;
  } catch {
    return undefined;
  }
}

function forward(source: WebSocket, target: WebSocket, data: RawData, isBinary: boolean): void {
  if (target.readyState !== WebSocket.OPEN) return;
  target.send(data, { binary: isBinary }, () => {
    if (source.isPaused && target.bufferedAmount <= LOW_WATER) source.resume();
  });
  if (target.bufferedAmount > HIGH_WATER && !source.isPaused) source.pause();
}

/**
 * `GET /v1/subscribe/{view_type}` over WebSocket: authorized at the handshake with the same
 * decision as REST (401/403/400 before any 101), then relayed frame by frame to the tenant's
 * projection shard with backpressure and a message size limit (WS_MAX_MESSAGE_BYTES).
 * The upstream failing or closing closes the client with 1011; policy closes are 1008
 * (SubscriptionRegistry), including when the access token it was opened with expires.
 */
@Injectable()
export class SubscriptionRelay implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly wss: WebSocketServer;
  private shuttingDown = false;
  private server: http.Server | undefined;

  constructor(
    private readonly adapterHost: HttpAdapterHost,
    private readonly authorizer: RequestAuthorizer,
    private readonly connector: UpstreamSocketConnector,
    private readonly registry: SubscriptionRegistry,
    private readonly metrics: MetricsService,
    @Inject(APP_CONFIG) config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: config.WS_MAX_MESSAGE_BYTES,
      perMessageDeflate: false,
      // `bearer, <token>` offered by a browser: accept `bearer`, never echo the token
      handleProtocols: (protocols) => (protocols.has('bearer') ? 'bearer' : false),
    });
  }

  onApplicationBootstrap(): void {
    this.server = this.adapterHost.httpAdapter.getHttpServer() as http.Server;
    this.server.on('upgrade', this.onUpgrade);
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.shuttingDown = true;
    this.server?.off('upgrade', this.onUpgrade);
    await this.registry.closeAll(SHUTDOWN_CLOSE_WAIT_MS);
    this.wss.close();
  }

  private readonly onUpgrade = (request: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => socket.destroy());
    const target = matchSubscribePath(request.url ?? '/');
    if (target === undefined) {
      // other upgrade listeners may own the path; alone, we answer 404
      if (this.server?.listenerCount('upgrade') === 1) writeRawResponse(socket, 404, { 'content-length': '0', connection: 'close' }, '');
      return;
    }
    const trace = continueTrace(request.headers.traceparent);
    const context: RequestContext = {
      requestId: randomUUID(),
      correlationId: acceptCorrelationId(request.headers['x-correlation-id']) ?? randomUUID(),
      traceId: trace.traceId,
      spanId: trace.spanId,
      traceFlags: trace.traceFlags,
      clientIp: request.socket.remoteAddress ?? '',
      userAgent: first(request.headers['user-agent'])?.slice(0, 512),
    };
    void requestContext.run(context, () => this.handshake(request, socket, head, target, context));
  };

  private async handshake(
    request: http.IncomingMessage,
    socket: Duplex,
    head: Buffer,
    target: SubscribeTarget,
    context: RequestContext,
  ): Promise<void> {
    const started = performance.now();
    let status = 101;
    try {
      if (this.shuttingDown) throw new AppError('unavailable', { logReason: 'shutting down' });
      const authorization = handshakeAuthorization(request);
      const result = await this.authorizer
        .authorize({
          declaration: SUBSCRIBE_DECLARATION,
          authorization,
          tenantHeader: handshakeTenant(request, target),
          resource: target.viewType,
          policy: { method: 'GET', path: request.url ?? '/', clientIp: context.clientIp, clientCertSubject: context.clientCertSubject },
        })
        .catch((error: unknown) => {
          if (error instanceof AppError && error.code === 'forbidden') {
            context.authz = { decision: 'deny', reason: error.options.logReason ?? 'deny' };
          }
          throw error;
        });
      const principal = result.principal!;
      const tenantId = result.tenantId!;
      context.principalId = principal.id;
      context.principalType = principal.type;
      context.tenantId = tenantId;
      context.authz = result.decision;
      const connected = await this.connector.connect({
        viewType: target.viewType,
        query: target.upstreamQuery,
        tenantId,
        principal,
        context,
        inboundHeaders: request.headers,
      });
      context.upstream = connected.upstream;
      if ('refusal' in connected) {
        status = connected.refusal.status;
        writeRawResponse(
          socket,
          status,
          { ...connected.refusal.headers, connection: 'close', 'x-request-id': context.requestId },
          connected.refusal.body,
        );
        return;
      }
      const upstream = connected.socket;
      if (socket.destroyed) {
        upstream.terminate();
        status = 499;
        return;
      }
      this.wss.handleUpgrade(request, socket, head, (client) =>
        this.relay(client, upstream, {
          principalId: principal.id,
          sessionId: principal.sessionId,
          authorization: authorization!,
          tenantId,
          target,
          context,
        }),
      );
    } catch (error) {
      let appError: AppError;
      if (error instanceof AppError) {
        appError = error;
        if (error.options.logReason !== undefined) {
          this.logger.info({ code: error.code, reason: error.options.logReason }, 'request refused');
        }
      } else {
        this.logger.error({ err: error }, 'unhandled error in a websocket handshake');
        appError = new AppError('internal_error');
      }
      status = refuseHandshake(socket, appError, context);
    } finally {
      this.metrics.httpRequests.inc({ method: 'GET', route: SUBSCRIBE_PATH, status: String(status) });
      this.logger.info(
        {
          request_id: context.requestId,
          correlation_id: context.correlationId,
          trace_id: context.traceId,
          span_id: context.spanId,
          principal_id: context.principalId ?? null,
          tenant_id: context.tenantId ?? null,
          method: 'GET',
          route: SUBSCRIBE_PATH,
          status,
          duration_ms: Math.round((performance.now() - started) * 100) / 100,
          upstream: context.upstream,
          authz: context.authz,
          ip: context.clientIp,
        },
        'request',
      );
    }
  }

  private relay(
    client: WebSocket,
    upstream: WebSocket,
    info: {
      principalId: string;
      sessionId?: string;
      authorization: string;
      tenantId: string;
      target: SubscribeTarget;
      context: RequestContext;
    },
  ): void {
    const opened = Date.now();
    let finished = false;
    let expiry: NodeJS.Timeout | undefined;
    const entry: LiveSubscription = {
      client,
      upstream,
      principalId: info.principalId,
      sessionId: info.sessionId,
      authorization: info.authorization,
      tenantId: info.tenantId,
      viewType: info.target.viewType,
      close: (code, reason) => {
        if (finished) return;
        finished = true;
        clearTimeout(expiry);
        this.registry.remove(entry);
        if (client.readyState === WebSocket.OPEN || client.readyState === WebSocket.CONNECTING) client.close(code, reason);
        if (upstream.readyState === WebSocket.OPEN) upstream.close(1000, 'client gone');
        else upstream.terminate();
        requestContext.run(info.context, () =>
          this.logger.info({ close_code: code, reason, seconds: Math.round((Date.now() - opened) / 100) / 10 }, 'subscription closed'),
        );
      },
    };
    this.registry.add(entry);
    upstream.removeAllListeners('error');
    client.on('message', (data, isBinary) => forward(client, upstream, data, isBinary));
    upstream.on('message', (data, isBinary) => forward(upstream, client, data, isBinary));
    upstream.on('close', () => entry.close(CLOSE_INTERNAL_ERROR, 'upstream closed'));
    upstream.on('error', () => entry.close(CLOSE_INTERNAL_ERROR, 'upstream failed'));
    client.on('close', (code) => entry.close(code, 'client closed'));
    client.on('error', () => entry.close(1009, 'client error'));
    const exp = tokenExpiry(info.authorization);
    if (exp !== undefined) {
      const remaining = Math.min(exp * 1000 - Date.now(), 2 ** 31 - 1);
      expiry = setTimeout(() => entry.close(CLOSE_POLICY_VIOLATION, 'token expired'), Math.max(0, remaining));
      expiry.unref();
    }
  }
}
