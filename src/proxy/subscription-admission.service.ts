import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { RequestAuthorizer } from '../authz/request-authorizer.service';
import { AppError } from '../common/app-error';
import { duplicateAuthorizationError, headerCount } from '../common/authorization-header';
import { dependencyFailureAsAppError } from '../common/dependency-failure';
import { requestContext, type RequestContext } from '../common/request-context';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { LOGGER } from '../observability/logger';
import { MetricsService } from '../observability/metrics.service';
import { logRequest, openRequestContext, recordAuthorization, recordDenial } from '../observability/request-edge';
import type { Principal } from '../session/principal';
import {
  SUBSCRIBE_DECLARATION,
  SUBSCRIBE_PATH,
  allowedOrigins,
  clientIpResolver,
  handshakeAuthorization,
  handshakeTenant,
  malformedHandshake,
  matchSubscribePath,
  originAllowed,
  refuseHandshake,
  writeRawResponse,
  type SubscribeTarget,
} from './subscription-handshake';
import { SUBSCRIPTION_HANDSHAKE_CHECKS, type HandshakeRelease, type SubscriptionHandshakeCheck } from './subscription-handshake-checks';
import type { UpgradeGate } from './subscription-ws.adapter';
import { UpstreamSocketConnector, type UpstreamSocket } from './upstream-socket.connector';
import { clientCertificateReader } from '../observability/client-certificate';
import { firstHeader } from '../common/header-value';

/** A handshake that passed every check and has its upstream open, waiting for its 101. */
export interface AdmittedSubscription {
  upstream: UpstreamSocket;
  /** the projection shard the upstream went to (a rebalancing of the tenant closes it with 1012) */
  shardId: string;
  principal: Principal;
  authorization: string;
  tenantId: string;
  target: SubscribeTarget;
  context: RequestContext;
  /** gives back what the handshake checks reserved; idempotent */
  release(): void;
}

/** The route label of a request no route matched, as the HTTP pipeline writes it. */
const UNMATCHED_ROUTE = 'unmatched';

function releaseAll(releases: HandshakeRelease[]): () => void {
  let released = false;
  return () => {
    if (released) return;
    released = true;
    for (const release of releases.reverse()) release();
  };
}

/**
 * Everything a `/v1/subscribe/{view_type}` handshake passes before its 101, in order: the path,
 * the handshake's own shape (method, Upgrade, key, version), shutdown, Origin, authorization
 * (same decision as REST), the handshake checks (connection cap, limits), the upstream
 * handshake. Any refusal is an HTTP answer in the problem envelope, written here;
 * so is the request's one log line. The WebSocket adapter asks this gate, the gateway claims
 * what it admitted.
 */
@Injectable()
export class SubscriptionAdmission implements UpgradeGate {
  private readonly admitted = new WeakMap<http.IncomingMessage, AdmittedSubscription>();
  private readonly origins: ReadonlySet<string>;
  private readonly clientIp: (request: http.IncomingMessage) => string;
  private readonly clientCertSubject: (request: http.IncomingMessage) => string | undefined;
  private closed = false;

  constructor(
    private readonly authorizer: RequestAuthorizer,
    private readonly connector: UpstreamSocketConnector,
    private readonly metrics: MetricsService,
    @Inject(SUBSCRIPTION_HANDSHAKE_CHECKS) private readonly checks: SubscriptionHandshakeCheck[],
    @Inject(APP_CONFIG) config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.origins = allowedOrigins(config.CORS_ORIGINS, config.PUBLIC_URL);
    this.clientIp = clientIpResolver(config.TRUST_PROXY);
    this.clientCertSubject = clientCertificateReader(config.TRUST_PROXY);
  }

  /** From now on every handshake is 503 `unavailable` (SIGTERM). */
  stopAdmitting(): void {
    this.closed = true;
  }

  /** Hands the admitted subscription to the gateway, once. */
  claim(request: http.IncomingMessage): AdmittedSubscription | undefined {
    const subscription = this.admitted.get(request);
    this.admitted.delete(request);
    return subscription;
  }

  abandon(request: http.IncomingMessage): void {
    const subscription = this.claim(request);
    if (subscription === undefined) return;
    subscription.upstream.socket.destroy();
    subscription.release();
  }

  admit(request: http.IncomingMessage, socket: Duplex): Promise<Record<string, string> | undefined> {
    const context = this.openContext(request);
    return requestContext.run(context, () => this.handshake(request, socket, context));
  }

  notFound(request: http.IncomingMessage, socket: Duplex): void {
    const started = performance.now();
    const context = this.openContext(request);
    requestContext.run(context, () => {
      const error = new AppError('not_found', { logReason: 'no WebSocket served at this path' });
      const status = refuseHandshake(socket, this.appErrorOf(error), context);
      this.record(request, context, UNMATCHED_ROUTE, status, started);
    });
  }

  private openContext(request: http.IncomingMessage): RequestContext {
    return openRequestContext({
      traceparent: request.headers.traceparent,
      tracestate: request.headers.tracestate,
      correlationId: request.headers['x-correlation-id'],
      userAgent: firstHeader(request.headers['user-agent']),
      clientIp: this.clientIp(request),
      clientCertSubject: this.clientCertSubject(request),
    });
  }

  /** The request's one log line and metric. */
  private record(request: http.IncomingMessage, context: RequestContext, route: string, status: number, started: number): void {
    const method = request.method ?? 'GET';
    this.metrics.httpRequests.inc({ method, route, status: String(status) });
    logRequest(this.logger, context, { method, route, status, durationMs: performance.now() - started });
  }

  private async handshake(
    request: http.IncomingMessage,
    socket: Duplex,
    context: RequestContext,
  ): Promise<Record<string, string> | undefined> {
    const started = performance.now();
    let status = 101;
    let route = SUBSCRIBE_PATH;
    let releases: HandshakeRelease[] = [];
    try {
      const target = matchSubscribePath(request.url ?? '/');
      if (target === undefined) {
        route = UNMATCHED_ROUTE;
        throw new AppError('not_found', { logReason: 'no such subscription path' });
      }
      // what the request alone shows wrong is refused before anything is looked up or reserved
      const malformed = malformedHandshake(request);
      if (malformed !== undefined) throw malformed;
      if (this.closed) throw new AppError('unavailable', { logReason: 'shutting down' });
      if (!originAllowed(request, this.origins)) {
        throw new AppError('forbidden', {
          detail: 'origin not allowed',
          logReason: `deny: origin ${firstHeader(request.headers.origin)?.slice(0, 200)} not allowed`,
        });
      }
      if (headerCount(request.rawHeaders, 'authorization') > 1) throw duplicateAuthorizationError();
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
          recordDenial(context, error);
          throw error;
        });
      recordAuthorization(context, result);
      const principal = result.principal!;
      const tenantId = result.tenantId!;
      for (const check of this.checks) {
        const release = await check.check({ principal, tenantId, viewType: target.viewType, context, request });
        if (release !== undefined) releases.push(release);
      }
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
          {
            ...connected.refusal.headers,
            connection: 'close',
            'x-request-id': context.requestId,
            'x-correlation-id': context.correlationId,
          },
          connected.refusal.body,
        );
        return undefined;
      }
      if (socket.destroyed) {
        connected.socket.socket.destroy();
        status = 499;
        return undefined;
      }
      this.admitted.set(request, {
        upstream: connected.socket,
        shardId: connected.shardId,
        principal,
        authorization: authorization!,
        tenantId,
        target,
        context,
        release: releaseAll(releases),
      });
      releases = [];
      return { 'x-request-id': context.requestId, 'x-correlation-id': context.correlationId };
    } catch (error) {
      status = refuseHandshake(socket, this.appErrorOf(error), context);
      return undefined;
    } finally {
      // whatever was reserved for a handshake that is not going to open is given back now
      releaseAll(releases)();
      this.record(request, context, route, status, started);
    }
  }

  private appErrorOf(error: unknown): AppError {
    const dependencyFailure = dependencyFailureAsAppError(error);
    if (dependencyFailure !== undefined) {
      this.metrics.dependencyErrors.inc({ dependency: 'database' });
      this.logger.warn({ dependency: 'database', reason: dependencyFailure.options.logReason }, 'dependency unavailable; answered 503');
      return dependencyFailure;
    }
    if (error instanceof AppError) {
      if (error.options.logReason !== undefined) {
        this.logger.info({ code: error.code, reason: error.options.logReason }, 'request refused');
      }
      return error;
    }
    this.logger.error({ err: error }, 'unhandled error in a websocket handshake');
    return new AppError('internal_error');
  }
}
