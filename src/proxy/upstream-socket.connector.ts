import { Inject, Injectable } from '@nestjs/common';
import WebSocket from 'ws';
import { AppError } from '../common/app-error';
import type { RequestContext } from '../common/request-context';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { MetricsService } from '../observability/metrics.service';
import { RoutingService } from '../routing/routing.service';
import type { Principal } from '../session/principal';
import { EndpointBreakers } from './endpoint-breakers.service';
import { InternalTokenService } from './internal-token.service';
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

/** `shardId`: the shard the socket went to, so a rebalancing of the tenant can close it (1012). */
export type UpstreamSocketResult =
  { socket: WebSocket; upstream: string; shardId: string } | { refusal: UpstreamRefusal; upstream: string; shardId: string };

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
      // the client's subprotocols may carry its token; ws sets its own handshake headers
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

  private open(url: string, headers: Record<string, string | string[]>): Promise<{ socket: WebSocket } | { refusal: UpstreamRefusal }> {
    return new Promise((resolve, reject) => {
      const material = this.tls.material();
      const socket = new WebSocket(url, {
        ...(material === undefined ? {} : { secureContext: material.secureContext, rejectUnauthorized: true }),
        headers: headers as Record<string, string>,
        handshakeTimeout: this.config.UPSTREAM_TIMEOUT_MS,
        maxPayload: this.config.WS_MAX_MESSAGE_BYTES,
        perMessageDeflate: false,
        skipUTF8Validation: true,
        // RFC 6455 masking protects caching intermediaries from client-chosen bytes; on this
        // internal hop the sender is Gatehouse itself, so an all-zero key lets ws skip the XOR pass
        generateMask: () => undefined,
      });
      let settled = false;
      const fail = (error: unknown) => {
        if (settled) return;
        settled = true;
        socket.terminate();
        const message = error instanceof Error ? error.message : String(error);
        reject(
          /timed out/i.test(message) ? new HopFailure('timeout', 'connect', `websocket handshake: ${message}`) : classifyHopError(error),
        );
      };
      socket.once('open', () => {
        if (settled) return;
        settled = true;
        socket.removeListener('error', fail);
        // the relay attaches its own handlers; until then an error must not go unheard
        socket.on('error', () => undefined);
        resolve({ socket });
      });
      socket.once('error', fail);
      socket.once('unexpected-response', (_request, response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size <= MAX_REFUSAL_BODY) chunks.push(chunk);
        });
        response.on('end', () => {
          if (settled) return;
          settled = true;
          const relayed: Record<string, string> = {};
          const contentType = response.headers['content-type'];
          if (contentType !== undefined) relayed['content-type'] = contentType;
          const body = Buffer.concat(chunks);
          relayed['content-length'] = String(body.length);
          socket.terminate();
          resolve({ refusal: { status: response.statusCode ?? 502, headers: relayed, body } });
        });
        response.on('error', fail);
      });
    });
  }
}
