import type { Readable } from 'node:stream';
import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { Agent, type Dispatcher } from 'undici';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { MetricsService, counterSeries } from '../observability/metrics.service';
import type { ServiceKind } from '../routing/routing-document';
import { RoutingService } from '../routing/routing.service';
import type { Principal } from '../session/principal';
import type { RequestContext } from '../common/request-context';
import { EndpointBreakers } from './endpoint-breakers.service';
import { InternalTokenService } from './internal-token.service';
import { upstreamRequestHeaders, type HeaderMap } from './upstream-headers';
import { UpstreamExchange, type UpstreamAnswer, type UpstreamBody } from './upstream-exchange';
import { HopFailure, classifyHopError } from './upstream-failure';
import { StreamedBody } from './streamed-body';
import { UpstreamTls } from './upstream-tls';

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);
/** Upper bound of pooled keep-alive connections per upstream endpoint. */
const CONNECTIONS_PER_ENDPOINT = 256;

interface UpstreamCounts {
  ok: { inc(): void };
  errorReply: { inc(): void };
  circuitOpen: { inc(): void };
}

export interface UpstreamHttpRequest {
  kind: ServiceKind;
  /** routing key: the tenant, or undefined for the default placement */
  tenantId: string | undefined;
  principal: Principal;
  context: RequestContext;
  method: string;
  /** path and query, as sent upstream */
  path: string;
  inboundHeaders: HeaderMap;
  /** streamed from the client (proxied routes), or already in memory */
  body?: StreamedBody | Buffer;
}

export interface UpstreamHttpResponse {
  statusCode: number;
  headers: HeaderMap;
  body: UpstreamBody;
  /** for the request log line: `kind shard endpoint` */
  upstream: string;
  attempts: number;
}

/**
 * Pooled keep-alive HTTP/1.1 client (undici) to projection and runner endpoints. Each attempt
 * has UPSTREAM_TIMEOUT_MS until the response head; the body then streams to the client.
 * A failed attempt moves to the shard's next endpoint only when that cannot repeat an effect:
 * the connection was never made, or the method is idempotent. Timeouts are not retried.
 */
@Injectable()
export class HttpUpstreamClient implements OnApplicationShutdown {
  private agent: Agent;
  private readonly counts = new Map<ServiceKind, UpstreamCounts>();
  private readonly origins = new Map<string, string>();

  constructor(
    private readonly routing: RoutingService,
    private readonly breakers: EndpointBreakers,
    private readonly tokens: InternalTokenService,
    private readonly metrics: MetricsService,
    private readonly tls: UpstreamTls,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    this.agent = this.newAgent();
    // a rotated certificate: new connections use it; the old pool finishes what it has in flight
    tls.onChange(() => {
      this.origins.clear();
      const old = this.agent;
      this.agent = this.newAgent();
      void old.close().catch(() => undefined);
    });
  }

  private newAgent(): Agent {
    const material = this.tls.material();
    return new Agent({
      connections: CONNECTIONS_PER_ENDPOINT,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 600_000,
      connect: {
        timeout: this.config.UPSTREAM_TIMEOUT_MS,
        ...(material === undefined ? {} : { secureContext: material.secureContext, rejectUnauthorized: true }),
      },
      headersTimeout: this.config.UPSTREAM_TIMEOUT_MS + 1000,
      bodyTimeout: this.config.UPSTREAM_TIMEOUT_MS,
    });
  }

  async onApplicationShutdown(): Promise<void> {
    await this.agent.close().catch(() => undefined);
  }

  async send(request: UpstreamHttpRequest): Promise<UpstreamHttpResponse> {
    const { kind, tenantId, principal, context } = request;
    const shard = this.routing.resolve(kind, tenantId);
    const internalToken = this.tokens.mintNow(kind, principal, tenantId) ?? (await this.tokens.mint(kind, principal, tenantId));
    const headers = upstreamRequestHeaders(request.inboundHeaders, { principal, tenantId, internalToken, context });
    let { body } = request;
    if (body instanceof StreamedBody) {
      // a streamed body keeps its declared length (undici then checks the bytes against it); else it goes chunked
      if (body.contentLength !== undefined) headers['content-length'] = String(body.contentLength);
      // a small one is read whole first: one write with the request head, and resendable
      const small = body.readSmall();
      if (small !== undefined) body = await small;
    }
    const method = request.method.toUpperCase();
    const endpoints = this.breakers.plan(shard);
    const counts = this.upstreamCounts(kind);
    let lastError: unknown;
    let attempts = 0;
    for (const endpoint of endpoints) {
      attempts += 1;
      let breaker;
      try {
        breaker = this.breakers.enter(kind, endpoint);
      } catch (error) {
        // its breaker opened since the plan was made
        lastError = error;
        counts.circuitOpen.inc();
        continue;
      }
      let head: UpstreamAnswer;
      try {
        head = await this.attempt(endpoint, method, request.path, headers, body);
      } catch (error) {
        this.breakers.settle(breaker, error);
        lastError = error;
        if (!(error instanceof HopFailure)) throw error;
        this.metrics.upstreamRequests.inc({ service_kind: kind, outcome: error.kind });
        context.upstream = `${kind} ${shard.shardId} ${endpoint} failed: ${error.reason}`;
        // a streamed body that has begun to flow cannot be sent again
        const resendable = !(body instanceof StreamedBody && body.touched);
        const retryable = error.kind === 'unavailable' && resendable && (error.phase === 'connect' || IDEMPOTENT.has(method));
        if (!retryable) break;
        continue;
      }
      this.breakers.settle(breaker, undefined);
      (head.statusCode >= 500 ? counts.errorReply : counts.ok).inc();
      return {
        statusCode: head.statusCode,
        headers: head.headers,
        body: head.body,
        upstream: `${kind} ${shard.shardId} ${endpoint}`,
        attempts,
      };
    }
    if (lastError instanceof HopFailure) throw lastError.toAppError();
    throw lastError;
  }

  /** The attempt counter's series of a service kind, found once (prom-client hashes labels on every call). */
  private upstreamCounts(kind: ServiceKind): UpstreamCounts {
    let counts = this.counts.get(kind);
    if (counts === undefined) {
      const series = (outcome: string) => counterSeries(this.metrics.upstreamRequests, { service_kind: kind, outcome });
      counts = { ok: series('ok'), errorReply: series('error_reply'), circuitOpen: series('circuit_open') };
      this.counts.set(kind, counts);
    }
    return counts;
  }

  /**
   * One attempt, with UPSTREAM_TIMEOUT_MS from the moment the request is written (for a streamed
   * body: once its last byte went out, so a slow client upload is not an upstream timeout)
   * until the response head. Rejects with a HopFailure, or with the client's own failure when
   * the request body failed on the client's side (limit crossed, client gone: not the
   * upstream's fault).
   */
  private attempt(
    endpoint: string,
    method: string,
    path: string,
    headers: Record<string, string | string[]>,
    body: StreamedBody | Buffer | undefined,
  ): Promise<UpstreamAnswer> {
    const streamed = body instanceof StreamedBody ? body : undefined;
    const exchange = new UpstreamExchange(method, this.config.UPSTREAM_TIMEOUT_MS, (error) =>
      streamed?.failure !== undefined ? streamed.failure : classifyHopError(error),
    );
    let sent: Buffer | Readable | undefined;
    if (streamed !== undefined) {
      sent = streamed.forUpstream();
      sent.once('end', () => exchange.startDeadline());
    } else {
      const whole = body as Buffer | undefined;
      sent = whole !== undefined && whole.length > 0 ? whole : undefined;
      exchange.startDeadline();
    }
    this.agent.dispatch({ origin: this.origin(endpoint), path, method: method as Dispatcher.HttpMethod, headers, body: sent }, exchange);
    return exchange.answer;
  }

  /** `http://host:port` (or https with upstream TLS), built once per endpoint. */
  private origin(endpoint: string): string {
    let origin = this.origins.get(endpoint);
    if (origin === undefined) {
      origin = `${this.tls.scheme('http')}://${endpoint}`;
      if (this.origins.size >= 10_000) this.origins.clear();
      this.origins.set(endpoint, origin);
    }
    return origin;
  }
}
