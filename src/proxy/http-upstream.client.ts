import type { Readable } from 'node:stream';
import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { Agent, type Dispatcher } from 'undici';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { MetricsService } from '../observability/metrics.service';
import type { ServiceKind } from '../routing/routing-document';
import { RoutingService } from '../routing/routing.service';
import type { Principal } from '../session/principal';
import type { RequestContext } from '../common/request-context';
import { EndpointBreakers } from './endpoint-breakers.service';
import { InternalTokenService } from './internal-token.service';
import { forwardableRequestHeaders, identityHeaders, type HeaderMap } from './upstream-headers';
import { HopFailure, classifyHopError } from './upstream-failure';
import { AppError } from '../common/app-error';
import { StreamedBody } from './streamed-body';
import { UpstreamTls } from './upstream-tls';

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);
/** Upper bound of pooled keep-alive connections per upstream endpoint. */
const CONNECTIONS_PER_ENDPOINT = 256;

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
  body: Dispatcher.ResponseData['body'];
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
    const shard = this.routing.resolve(request.kind, request.tenantId);
    const internalToken = await this.tokens.mint(request.kind, request.principal, request.tenantId);
    const headers = forwardableRequestHeaders(request.inboundHeaders);
    Object.assign(
      headers,
      identityHeaders({ principal: request.principal, tenantId: request.tenantId, internalToken, context: request.context }),
    );
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
    let lastError: unknown;
    let attempts = 0;
    for (const endpoint of endpoints) {
      attempts += 1;
      try {
        const response = await this.breakers.run(request.kind, endpoint, () => this.attempt(endpoint, method, request.path, headers, body));
        this.metrics.upstreamRequests.inc({ service_kind: request.kind, outcome: response.statusCode >= 500 ? 'error_reply' : 'ok' });
        return {
          statusCode: response.statusCode,
          headers: response.headers,
          body: response.body,
          upstream: `${request.kind} ${shard.shardId} ${endpoint}`,
          attempts,
        };
      } catch (error) {
        lastError = error;
        if (error instanceof AppError && error.code === 'circuit_open') {
          this.metrics.upstreamRequests.inc({ service_kind: request.kind, outcome: 'circuit_open' });
          continue;
        }
        if (!(error instanceof HopFailure)) throw error;
        this.metrics.upstreamRequests.inc({ service_kind: request.kind, outcome: error.kind });
        request.context.upstream = `${request.kind} ${shard.shardId} ${endpoint} failed: ${error.reason}`;
        // a streamed body that has begun to flow cannot be sent again
        const resendable = !(body instanceof StreamedBody && body.touched);
        const retryable = error.kind === 'unavailable' && resendable && (error.phase === 'connect' || IDEMPOTENT.has(method));
        if (!retryable) break;
      }
    }
    if (lastError instanceof HopFailure) throw lastError.toAppError();
    throw lastError;
  }

  /**
   * One attempt, with UPSTREAM_TIMEOUT_MS from the moment the request is written (for a streamed
   * body: once its last byte went out, so a slow client upload is not an upstream timeout)
   * until the response head.
   */
  private async attempt(
    endpoint: string,
    method: string,
    path: string,
    headers: Record<string, string | string[]>,
    body: StreamedBody | Buffer | undefined,
  ): Promise<Dispatcher.ResponseData> {
    const controller = new AbortController();
    const timeoutMs = this.config.UPSTREAM_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      timer = setTimeout(() => controller.abort(new HopFailure('timeout', 'sent', `no response within ${timeoutMs} ms`)), timeoutMs);
    };
    let sent: Buffer | Readable | undefined;
    if (body instanceof StreamedBody) {
      sent = body.forUpstream();
      sent.once('end', arm);
    } else {
      sent = body !== undefined && body.length > 0 ? body : undefined;
      arm();
    }
    try {
      return await this.agent.request({
        origin: `${this.tls.scheme('http')}://${endpoint}`,
        path,
        method: method as Dispatcher.HttpMethod,
        headers,
        body: sent,
        signal: controller.signal,
      });
    } catch (error) {
      // the client's side failed (limit crossed, client gone): not the upstream's fault
      if (body instanceof StreamedBody && body.failure !== undefined) throw body.failure;
      throw classifyHopError(controller.signal.aborted ? controller.signal.reason : error);
    } finally {
      clearTimeout(timer);
    }
  }
}
