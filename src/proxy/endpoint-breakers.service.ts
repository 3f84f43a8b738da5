import { Inject, Injectable } from '@nestjs/common';
import { CircuitState, ConsecutiveBreaker, circuitBreaker, handleWhen, type CircuitBreakerPolicy } from 'cockatiel';
import type { Logger } from 'pino';
import { AppError } from '../common/app-error';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { LOGGER } from '../observability/logger';
import type { ServiceKind } from '../routing/routing-document';
import type { ResolvedShard } from '../routing/routing-table';
import { RoutingService } from '../routing/routing.service';
import { HopFailure } from './upstream-failure';

interface Breaker {
  policy: CircuitBreakerPolicy;
  openedAt: number;
}

/**
 * One circuit breaker per upstream endpoint (cockatiel): after UPSTREAM_BREAKER_FAILURES
 * consecutive hop failures it opens for UPSTREAM_BREAKER_COOLDOWN_MS, then lets one probe
 * through (half-open); the probe's result closes or reopens it. Endpoints of a shard are
 * taken round-robin and open ones are skipped; only when all are open does a call fail with
 * 503 circuit_open and a Retry-After. Upstream error replies are not hop failures.
 */
@Injectable()
export class EndpointBreakers {
  private readonly breakers = new Map<string, Breaker>();
  private readonly cursors = new Map<string, number>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    routing: RoutingService,
  ) {
    // forget endpoints that left the table
    routing.onChange((snapshot) => {
      const live = new Set(Object.values(snapshot.table.shards).flatMap((endpoints) => endpoints.map((e) => `${snapshot.kind} ${e}`)));
      for (const key of this.breakers.keys()) if (key.startsWith(`${snapshot.kind} `) && !live.has(key)) this.breakers.delete(key);
    });
  }

  /**
   * The shard's endpoints in the order to try them: round-robin start, endpoints whose
   * breaker refuses calls left out. All refusing → 503 circuit_open.
   */
  plan(shard: ResolvedShard): string[] {
    const { endpoints } = shard;
    const cursorKey = `${shard.kind} ${shard.shardId}`;
    const start = (this.cursors.get(cursorKey) ?? 0) % endpoints.length;
    this.cursors.set(cursorKey, start + 1);
    const ordered: string[] = [];
    for (let index = 0; index < endpoints.length; index += 1) {
      const endpoint = endpoints[(start + index) % endpoints.length]!;
      if (this.admits(shard.kind, endpoint)) ordered.push(endpoint);
    }
    if (ordered.length === 0) throw this.openError(shard.kind, endpoints);
    return ordered;
  }

  /** Runs one attempt against `endpoint` through its breaker; HopFailures count against it. */
  async run<T>(kind: ServiceKind, endpoint: string, attempt: () => Promise<T>): Promise<T> {
    const breaker = this.breaker(kind, endpoint);
    if (breaker.policy.state === CircuitState.HalfOpen) throw this.openError(kind, [endpoint]);
    try {
      return await breaker.policy.execute(attempt);
    } catch (error) {
      if ((error as Error)?.name === 'BrokenCircuitError') throw this.openError(kind, [endpoint]);
      throw error;
    }
  }

  /** Whether calls may go to the endpoint now (closed, or open long enough for a probe). */
  private admits(kind: ServiceKind, endpoint: string): boolean {
    const breaker = this.breakers.get(`${kind} ${endpoint}`);
    if (breaker === undefined) return true;
    switch (breaker.policy.state) {
      case CircuitState.Closed:
        return true;
      case CircuitState.Open:
        return Date.now() - breaker.openedAt >= this.config.UPSTREAM_BREAKER_COOLDOWN_MS;
      default:
        return false;
    }
  }

  private openError(kind: ServiceKind, endpoints: readonly string[]): AppError {
    let soonest = Number.POSITIVE_INFINITY;
    for (const endpoint of endpoints) {
      const breaker = this.breakers.get(`${kind} ${endpoint}`);
      const until = breaker === undefined ? Date.now() : breaker.openedAt + this.config.UPSTREAM_BREAKER_COOLDOWN_MS;
      soonest = Math.min(soonest, until);
    }
    const retryAfter = Math.max(1, Math.ceil((soonest - Date.now()) / 1000));
    return new AppError('circuit_open', {
      headers: { 'retry-after': String(retryAfter) },
      logReason: `circuit open for every ${kind} endpoint of the shard`,
    });
  }

  private breaker(kind: ServiceKind, endpoint: string): Breaker {
    const key = `${kind} ${endpoint}`;
    let breaker = this.breakers.get(key);
    if (breaker === undefined) {
      const policy = circuitBreaker(
        handleWhen((error) => error instanceof HopFailure),
        {
          halfOpenAfter: this.config.UPSTREAM_BREAKER_COOLDOWN_MS,
          breaker: new ConsecutiveBreaker(this.config.UPSTREAM_BREAKER_FAILURES),
        },
      );
      const created: Breaker = { policy, openedAt: 0 };
      policy.onBreak(() => {
        created.openedAt = Date.now();
        this.logger.warn({ service_kind: kind, endpoint }, 'upstream circuit opened');
      });
      policy.onReset(() => this.logger.info({ service_kind: kind, endpoint }, 'upstream circuit closed'));
      breaker = created;
      this.breakers.set(key, breaker);
    }
    return breaker;
  }
}
