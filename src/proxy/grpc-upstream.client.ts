import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import * as grpc from '@grpc/grpc-js';
import { AppError } from '../common/app-error';
import type { RequestContext } from '../common/request-context';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { MetricsService } from '../observability/metrics.service';
import { RoutingService } from '../routing/routing.service';
import type { Principal } from '../session/principal';
import {
  commandServiceClientConstructor,
  type CommandServiceClient,
  type SubmitCommandRequest,
  type SubmitCommandResponse,
} from './command-proto';
import { EndpointBreakers } from './endpoint-breakers.service';
import { InternalTokenService } from './internal-token.service';
import { HopFailure, UpstreamGrpcError } from './upstream-failure';
import { identityHeaders } from './upstream-headers';
import { UpstreamTls, upstreamGrpcCredentials } from './upstream-tls';

/** Attempts per command on UNAVAILABLE (the first one included), all within the deadline. */
const MAX_ATTEMPTS = 4;
const BACKOFF_BASE_MS = 50;
const BACKOFF_MAX_MS = 500;
export const SUBMIT_COMMAND_PATH = '/aggregate.gateway.v1.CommandService/SubmitCommand';
const EMPTY = Buffer.alloc(0);
/** identity (de)serializer: the message stays the bytes it was on the wire */
const passBytes = (bytes: Buffer): Buffer => bytes;

export interface SubmitInput {
  request: SubmitCommandRequest;
  principal: Principal;
  tenantId: string;
  context: RequestContext;
  /** the client's deadline (epoch ms), when it gave one */
  deadline?: number;
}

/** Starts one unary call on a client with the metadata and deadline; the callback gets its outcome. */
type StartCall<T> = (
  client: CommandServiceClient,
  metadata: grpc.Metadata,
  deadline: number,
  callback: (error: grpc.ServiceError | null, response: T) => void,
) => void;

/**
 * Persistent gRPC channels to aggregate endpoints, one per endpoint, reused by every call.
 * UNAVAILABLE is retried with the same request (so the same command_id, which makes it safe)
 * on the shard's next endpoint, with backoff, until MAX_ATTEMPTS or the overall deadline:
 * the client's deadline, else UPSTREAM_TIMEOUT_MS. Each attempt carries the deadline upstream.
 */
@Injectable()
export class GrpcUpstreamClient implements OnApplicationShutdown {
  private readonly channels = new Map<string, CommandServiceClient>();

  constructor(
    private readonly routing: RoutingService,
    private readonly breakers: EndpointBreakers,
    private readonly tokens: InternalTokenService,
    private readonly metrics: MetricsService,
    private readonly tls: UpstreamTls,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    // a rotated certificate: drop the channels, the next call opens new ones with it
    tls.onChange(() => {
      for (const client of this.channels.values()) client.close();
      this.channels.clear();
    });
    routing.onChange((snapshot) => {
      if (snapshot.kind !== 'aggregate') return;
      const live = new Set(Object.values(snapshot.table.shards).flat());
      for (const [endpoint, client] of this.channels) {
        if (!live.has(endpoint)) {
          client.close();
          this.channels.delete(endpoint);
        }
      }
    });
  }

  onApplicationShutdown(): void {
    for (const client of this.channels.values()) client.close();
    this.channels.clear();
  }

  /** The HTTP wrapper's call: a decoded request, a decoded response. */
  submit(input: SubmitInput): Promise<SubmitCommandResponse> {
    return this.withRetries(input, (client, metadata, deadline, callback) =>
      client.SubmitCommand(input.request, metadata, { deadline }, (error, response) => callback(error, response ?? {})),
    );
  }

  /**
   * The gRPC pass-through: the client's encoded request goes upstream as the same bytes and the
   * aggregate's encoded response comes back as its bytes (no protobuf decode or re-encode).
   */
  forward(input: Omit<SubmitInput, 'request'> & { request: Buffer }): Promise<Buffer> {
    return this.withRetries(input, (client, metadata, deadline, callback) =>
      client.makeUnaryRequest<Buffer, Buffer>(
        SUBMIT_COMMAND_PATH,
        passBytes,
        passBytes,
        input.request,
        metadata,
        { deadline },
        (error, response) => callback(error, response ?? EMPTY),
      ),
    );
  }

  private async withRetries<T>(input: Omit<SubmitInput, 'request'>, start: StartCall<T>): Promise<T> {
    const shard = this.routing.resolve('aggregate', input.tenantId);
    const internalToken = await this.tokens.mint('aggregate', input.principal, input.tenantId);
    const metadata = new grpc.Metadata();
    const headers = identityHeaders({ principal: input.principal, tenantId: input.tenantId, internalToken, context: input.context });
    for (const name in headers) metadata.set(name, headers[name]!);
    const deadline = input.deadline ?? Date.now() + this.config.UPSTREAM_TIMEOUT_MS;
    for (let attempt = 1; ; attempt += 1) {
      const endpoint = this.breakers.plan(shard)[0]!;
      const attemptDeadline = Math.min(deadline, Date.now() + this.config.UPSTREAM_TIMEOUT_MS);
      input.context.upstream = `aggregate ${shard.shardId} ${endpoint} attempt ${attempt}`;
      try {
        const response = await this.breakers.run('aggregate', endpoint, () => this.call(endpoint, metadata, attemptDeadline, start));
        this.metrics.upstreamRequests.inc({ service_kind: 'aggregate', outcome: 'ok' });
        return response;
      } catch (error) {
        if (error instanceof UpstreamGrpcError) {
          this.metrics.upstreamRequests.inc({ service_kind: 'aggregate', outcome: 'error_reply' });
          throw error;
        }
        if (error instanceof AppError) {
          if (error.code === 'circuit_open') this.metrics.upstreamRequests.inc({ service_kind: 'aggregate', outcome: 'circuit_open' });
          throw error;
        }
        if (!(error instanceof HopFailure)) throw error;
        this.metrics.upstreamRequests.inc({ service_kind: 'aggregate', outcome: error.kind });
        input.context.upstream = `aggregate ${shard.shardId} ${endpoint} attempt ${attempt} failed: ${error.reason}`;
        const backoff = Math.min(BACKOFF_BASE_MS * 2 ** (attempt - 1), BACKOFF_MAX_MS) * (0.5 + Math.random() / 2);
        if (error.kind !== 'unavailable' || attempt >= MAX_ATTEMPTS || Date.now() + backoff >= deadline) throw error.toAppError();
        await new Promise((resolve) => setTimeout(resolve, backoff));
      }
    }
  }

  private call<T>(endpoint: string, metadata: grpc.Metadata, deadline: number, start: StartCall<T>): Promise<T> {
    const client = this.channel(endpoint);
    return new Promise((resolve, reject) => {
      start(client, metadata, deadline, (error, response) => {
        if (error === null) {
          resolve(response);
          return;
        }
        switch (error.code) {
          case grpc.status.UNAVAILABLE:
          case grpc.status.CANCELLED:
            reject(new HopFailure('unavailable', 'sent', `grpc ${grpc.status[error.code]}: ${error.details}`));
            return;
          case grpc.status.DEADLINE_EXCEEDED:
            reject(new HopFailure('timeout', 'sent', `grpc DEADLINE_EXCEEDED after ${Math.max(0, deadline - Date.now())} ms left`));
            return;
          default:
            reject(new UpstreamGrpcError(error.code, error.details));
        }
      });
    });
  }

  private channel(endpoint: string): CommandServiceClient {
    let client = this.channels.get(endpoint);
    if (client === undefined) {
      const Client = commandServiceClientConstructor();
      client = new Client(endpoint, upstreamGrpcCredentials(this.tls), {
        'grpc.keepalive_time_ms': 30_000,
        'grpc.keepalive_timeout_ms': 10_000,
        // a refused endpoint must fail fast so the retry can go elsewhere
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 2_000,
        // retries are ours (same command_id, next endpoint, within the deadline); grpc-js's own
        // would only buffer every message for nothing, and channelz bookkeeping runs per call
        'grpc.enable_retries': 0,
        'grpc.enable_channelz': 0,
      });
      this.channels.set(endpoint, client);
    }
    return client;
  }
}
