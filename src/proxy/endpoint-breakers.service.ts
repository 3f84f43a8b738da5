import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { AppError } from '../common/app-error';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { LOGGER } from '../observability/logger';
import type { ServiceKind } from '../routing/routing-document';
import type { ResolvedShard } from '../routing/routing-table';
import { RoutingService } from '../routing/routing.service';
import { HopFailure } from './upstream-failure';

type BreakerState = 'closed' | 'open' | 'half-open';

/** One endpoint's breaker: consecutive hop failures, and since when it is open. */
export class EndpointBreaker {
  state: BreakerState = 'closed';
  failures = 0;
  openedAt = 0;

  constructor(
    readonly kind: ServiceKind,
    readonly endpoint: string,
  ) {}
}

/**
 * One circuit breaker per upstream endpoint: after UPSTREAM_BREAKER_FAILURES consecutive hop
 * failures it opens for UPSTREAM_BREAKER_COOLDOWN_MS, then lets one probe through (half-open);
 * the probe's result closes or reopens it. Endpoints of a shard are taken round-robin and open
 * ones are skipped; only when all are open does a call fail with 503 circuit_open and a
 * Retry-After. Upstream error replies are not hop failures.
 *
 * The state machine is the one cockatiel's ConsecutiveBreaker policy had, written out: a call
 * through a closed breaker is a field read before and a counter write after, where the library
 * wrapped every attempt in its own promise, executor and event emitters (profiled on the proxied
 * path).
 */
@Injectable()
export class EndpointBreakers {
  /** per service kind, per endpoint (no key string built per call) */
  private readonly breakers = new Map<ServiceKind, Map<string, EndpointBreaker>>();
  /** round-robin position per shard's endpoint list (a routing change brings a new list) */
  private readonly cursors = new WeakMap<readonly string[], { next: number }>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    routing: RoutingService,
  ) {
    // forget endpoints that left the table
    routing.onChange((snapshot) => {
      const ofKind = this.breakers.get(snapshot.kind);
      if (ofKind === undefined) return;
      const live = new Set(Object.values(snapshot.table.shards).flat());
      for (const endpoint of ofKind.keys()) if (!live.has(endpoint)) ofKind.delete(endpoint);
    });
  }

  /**
   * The shard's endpoints in the order to try them: round-robin start, endpoints whose
   * breaker refuses calls left out. All refusing → 503 circuit_open.
   */
  plan(shard: ResolvedShard): readonly string[] {
    const { endpoints } = shard;
    const ofKind = this.breakers.get(shard.kind);
    if (endpoints.length === 1) {
      // the common case: one endpoint, its breaker closed (or never used)
      const only = endpoints[0]!;
      const breaker = ofKind?.get(only);
      if (breaker === undefined || breaker.state === 'closed' || this.admits(breaker)) return endpoints;
      throw this.openError(shard.kind, endpoints);
    }
    let cursor = this.cursors.get(endpoints);
    if (cursor === undefined) {
      cursor = { next: 0 };
      this.cursors.set(endpoints, cursor);
    }
    const start = cursor.next % endpoints.length;
    cursor.next = start + 1;
    const ordered: string[] = [];
    for (let index = 0; index < endpoints.length; index += 1) {
      const endpoint = endpoints[(start + index) % endpoints.length]!;
      const breaker = ofKind?.get(endpoint);
      if (breaker === undefined || this.admits(breaker)) ordered.push(endpoint);
    }
    if (ordered.length === 0) throw this.openError(shard.kind, endpoints);
    return ordered;
  }

  /** Runs one attempt against `endpoint` through its breaker; HopFailures count against it. */
  async run<T>(kind: ServiceKind, endpoint: string, attempt: () => Promise<T>): Promise<T> {
    const breaker = this.enter(kind, endpoint);
    let result: T;
    try {
      result = await attempt();
    } catch (error) {
      this.settle(breaker, error);
      throw error;
    }
    this.settle(breaker, undefined);
    return result;
  }

  /**
   * `run` in two halves, for a caller that awaits the attempt itself: the breaker the attempt
   * goes through (503 circuit_open when it refuses calls now; an open breaker whose cool-down
   * has passed lets this call through as its probe), then `settle` with the attempt's outcome.
   */
  enter(kind: ServiceKind, endpoint: string): EndpointBreaker {
    const breaker = this.breaker(kind, endpoint);
    switch (breaker.state) {
      case 'closed':
        return breaker;
      case 'open':
        if (Date.now() - breaker.openedAt < this.config.UPSTREAM_BREAKER_COOLDOWN_MS) throw this.openError(kind, [endpoint]);
        breaker.state = 'half-open';
        return breaker;
      default:
        // a probe is under way: other calls wait for its result
        throw this.openError(kind, [endpoint]);
    }
  }

  /** The attempt's outcome: `error` undefined for an answer (an upstream error reply is one). */
  settle(breaker: EndpointBreaker, error: unknown): void {
    if (!(error instanceof HopFailure)) {
      // an answer (or a failure on Gatehouse's side, not the endpoint's fault)
      if (breaker.state === 'closed') breaker.failures = 0;
      else if (breaker.state === 'half-open') {
        breaker.state = 'closed';
        breaker.failures = 0;
        this.logger.info({ service_kind: breaker.kind, endpoint: breaker.endpoint }, 'upstream circuit closed');
      }
      return;
    }
    // a call admitted before the breaker opened changes nothing once it is open
    if (breaker.state === 'open') return;
    breaker.failures += 1;
    if (breaker.state === 'half-open' || breaker.failures >= this.config.UPSTREAM_BREAKER_FAILURES) {
      breaker.state = 'open';
      breaker.openedAt = Date.now();
      breaker.failures = 0;
      this.logger.warn({ service_kind: breaker.kind, endpoint: breaker.endpoint }, 'upstream circuit opened');
    }
  }

  /**
   * An attempt that says nothing about the endpoint: it ran out of the *client's* time (a gRPC
   * deadline shorter than UPSTREAM_TIMEOUT_MS), so neither a failure — one client sending tiny
   * deadlines would otherwise open the circuit for every tenant on the shard — nor an answer.
   * A probe ended so leaves the breaker open, cool-down passed: the next call probes.
   */
  release(breaker: EndpointBreaker): void {
    if (breaker.state === 'half-open') breaker.state = 'open';
  }

  /** Whether calls may go to the endpoint now (closed, or open long enough for a probe). */
  private admits(breaker: EndpointBreaker): boolean {
    switch (breaker.state) {
      case 'closed':
        return true;
      case 'open':
        return Date.now() - breaker.openedAt >= this.config.UPSTREAM_BREAKER_COOLDOWN_MS;
      default:
        return false;
    }
  }

  private openError(kind: ServiceKind, endpoints: readonly string[]): AppError {
    let soonest = Number.POSITIVE_INFINITY;
    const ofKind = this.breakers.get(kind);
    for (const endpoint of endpoints) {
      const breaker = ofKind?.get(endpoint);
      const until = breaker === undefined ? Date.now() : breaker.openedAt + this.config.UPSTREAM_BREAKER_COOLDOWN_MS;
      soonest = Math.min(soonest, until);
    }
    const retryAfter = Math.max(1, Math.ceil((soonest - Date.now()) / 1000));
    return new AppError('circuit_open', {
      headers: { 'retry-after': String(retryAfter) },
      logReason: `circuit open for every ${kind} endpoint of the shard`,
    });
  }

  private breaker(kind: ServiceKind, endpoint: string): EndpointBreaker {
    let ofKind = this.breakers.get(kind);
    if (ofKind === undefined) {
      ofKind = new Map();
      this.breakers.set(kind, ofKind);
    }
    let breaker = ofKind.get(endpoint);
    if (breaker === undefined) {
      breaker = new EndpointBreaker(kind, endpoint);
      ofKind.set(endpoint, breaker);
    }
    return breaker;
  }
}
