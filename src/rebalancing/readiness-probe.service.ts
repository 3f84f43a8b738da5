import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { Agent, request as undiciRequest } from 'undici';
import { InternalTokenService } from '../proxy/internal-token.service';
import { UpstreamTls, upstreamGrpcCredentials } from '../proxy/upstream-tls';
import type { ServiceKind } from '../routing/routing-document';
import type { Principal } from '../session/principal';

/** CONTRACT §11: an endpoint that has not answered in 2 s is not ready. */
export const READINESS_TIMEOUT_MS = 2000;

const HEALTH_PROTO_PATH = path.resolve(__dirname, '..', '..', 'proto', 'grpc', 'health', 'v1', 'health.proto');

/** One endpoint's answer, as kept in the plan and sent in a 409 `target_not_ready`. */
export interface ReadinessCheck {
  endpoint: string;
  ready: boolean;
  reason: string | null;
  /** a lag figure when the endpoint reported one (e.g. a projection behind its stream) */
  lag?: number;
}

interface HealthClient extends grpc.Client {
  Check(
    request: { service: string },
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: (error: grpc.ServiceError | null, response?: { status?: string }) => void,
  ): grpc.ClientUnaryCall;
}
type HealthClientConstructor = new (address: string, credentials: grpc.ChannelCredentials) => HealthClient;

let healthConstructor: HealthClientConstructor | undefined;
function healthClientConstructor(): HealthClientConstructor {
  if (healthConstructor === undefined) {
    const definition = protoLoader.loadSync(HEALTH_PROTO_PATH, { keepCase: true, enums: String, defaults: true });
    const loaded = grpc.loadPackageDefinition(definition) as unknown as { grpc: { health: { v1: { Health: HealthClientConstructor } } } };
    healthConstructor = loaded.grpc.health.v1.Health;
  }
  return healthConstructor;
}

function reasonOf(body: unknown, status: number): { reason: string; lag?: number } {
  const record = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
  const reason = typeof record.reason === 'string' && record.reason !== '' ? record.reason.slice(0, 200) : `status ${status}`;
  return typeof record.lag === 'number' && Number.isFinite(record.lag) ? { reason, lag: record.lag } : { reason };
}

/**
 * Asks every endpoint of a shard whether a tenant is ready there: projection and runner nodes
 * over HTTP (`GET /v1/readiness/{tenant_id}`), aggregate nodes with the standard gRPC health
 * service (`aggregate.tenant.<tenant_id>`). Each call carries the internal token of the operator
 * who asked; no answer within 2 s, or no connection, is "not ready".
 */
@Injectable()
export class ReadinessProbe implements OnApplicationShutdown {
  // one channel per aggregate endpoint, reused between plan and apply
  private readonly healthClients = new Map<string, HealthClient>();

  /** readiness checks use the proxies' upstream TLS too (CONTRACT §13): never a plaintext check of a TLS upstream */
  private agent: Agent;

  constructor(
    private readonly tokens: InternalTokenService,
    private readonly tls: UpstreamTls,
  ) {
    this.agent = this.newAgent();
    tls.onChange(() => {
      const old = this.agent;
      this.agent = this.newAgent();
      void old.close().catch(() => undefined);
      for (const client of this.healthClients.values()) client.close();
      this.healthClients.clear();
    });
  }

  private newAgent(): Agent {
    const material = this.tls.material();
    return new Agent({
      connections: 4,
      connect: material === undefined ? {} : { secureContext: material.secureContext, rejectUnauthorized: true },
    });
  }

  onApplicationShutdown(): void {
    void this.agent.close().catch(() => undefined);
    for (const client of this.healthClients.values()) client.close();
    this.healthClients.clear();
  }

  async check(kind: ServiceKind, endpoints: readonly string[], tenantId: string, principal: Principal): Promise<ReadinessCheck[]> {
    const token = await this.tokens.mint(kind, principal, tenantId);
    return Promise.all(
      endpoints.map((endpoint) =>
        kind === 'aggregate' ? this.checkGrpc(endpoint, tenantId, token) : this.checkHttp(endpoint, tenantId, token),
      ),
    );
  }

  private async checkHttp(endpoint: string, tenantId: string, token: string): Promise<ReadinessCheck> {
    let response: { status: number; body: unknown };
    try {
      const answer = await undiciRequest(`${this.tls.scheme('http')}://${endpoint}/v1/readiness/${encodeURIComponent(tenantId)}`, {
        dispatcher: this.agent,
        headers: { authorization: `Bearer ${token}`, 'x-tenant-id': tenantId, accept: 'application/json' },
        signal: AbortSignal.timeout(READINESS_TIMEOUT_MS),
      });
      let body: unknown;
      try {
        body = await answer.body.json();
      } catch {
        body = undefined;
      }
      response = { status: answer.statusCode, body };
    } catch (error) {
      const timedOut = error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError');
      return { endpoint, ready: false, reason: timedOut ? 'timeout' : 'unreachable' };
    }
    const body = response.body;
    const ready = response.status === 200 && typeof body === 'object' && body !== null && (body as { ready?: unknown }).ready === true;
    if (ready) {
      const lag = (body as { lag?: unknown }).lag;
      return typeof lag === 'number' && Number.isFinite(lag) ? { endpoint, ready, reason: null, lag } : { endpoint, ready, reason: null };
    }
    return { endpoint, ready: false, ...reasonOf(body, response.status) };
  }

  private checkGrpc(endpoint: string, tenantId: string, token: string): Promise<ReadinessCheck> {
    let client = this.healthClients.get(endpoint);
    if (client === undefined) {
      const Health = healthClientConstructor();
      client = new Health(endpoint, upstreamGrpcCredentials(this.tls));
      this.healthClients.set(endpoint, client);
    }
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${token}`);
    metadata.set('x-tenant-id', tenantId);
    return new Promise((resolve) => {
      client.Check(
        { service: `aggregate.tenant.${tenantId}` },
        metadata,
        { deadline: Date.now() + READINESS_TIMEOUT_MS },
        (error, response) => {
          if (error !== null) {
            const reason =
              error.code === grpc.status.DEADLINE_EXCEEDED
                ? 'timeout'
                : error.code === grpc.status.UNAVAILABLE
                  ? 'unreachable'
                  : grpc.status[error.code];
            resolve({ endpoint, ready: false, reason: reason ?? 'error' });
            return;
          }
          const status = response?.status ?? 'UNKNOWN';
          resolve(status === 'SERVING' ? { endpoint, ready: true, reason: null } : { endpoint, ready: false, reason: status });
        },
      );
    });
  }
}
