import { Inject, Injectable, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ThrottlerGuard, type ThrottlerLimitDetail, type ThrottlerOptions } from '@nestjs/throttler';
import { AppError } from '../common/app-error';
import { requestContext } from '../common/request-context';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { MetricsService } from '../observability/metrics.service';
import { ExactCounterStorage } from './exact-counter.storage';

/** What one guard counts on the exact shared counters. */
export interface ExactScope {
  /** the throttler's name */
  name: string;
  /** the key of the shared counter is `<keyPrefix>:<tracker>` (e.g. `ip:203.0.113.7`), the same for every route */
  keyPrefix: string;
  /** calls admitted per window; 0 turns the guard off where the subclass says so */
  limit: number;
  windowMs: number;
  /** `gatehouse_rate_limited_total` labels and the log line's scope */
  labels: { scope: string; route_class: string };
}

/**
 * @nestjs/throttler's guard on the exact shared counters of CONTRACT §4 (ExactCounterStorage):
 * the library's own admission loop (throttlers, tracker, key, storage, "blocked" verdict), with
 * one key per scope and caller instead of its per-route hash, so every endpoint counting toward
 * a scope counts into the same row; its `X-RateLimit-*` headers off; a refusal is §4's 429
 * `rate_limited` with `Retry-After` and the metric and log scope of the refusing scope.
 *
 * Subclasses declare no constructor, only `scopeOf`: the dependencies are declared here, once.
 * ThrottlerGuard's own @InjectThrottlerOptions() and @InjectThrottlerStorage() on parameters 0
 * and 1 are inherited by subclasses (Nest reads self-declared dependencies through the prototype
 * chain), so a subclass constructor without its own @Inject on those positions would be handed
 * the proxied scopes' per-replica token buckets instead of the exact shared counters.
 */
@Injectable()
export abstract class ExactThrottlerGuard extends ThrottlerGuard {
  protected readonly scope: ExactScope;

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    @Inject(ExactCounterStorage) storage: ExactCounterStorage,
    reflector: Reflector,
    private readonly metrics: MetricsService,
  ) {
    // the library reads its throttlers at onModuleInit; the subclass's is known once `this` exists
    const throttlers: ThrottlerOptions[] = [];
    super({ throttlers, setHeaders: false }, storage, reflector);
    this.scope = this.scopeOf(config);
    throttlers.push({ name: this.scope.name, limit: this.scope.limit, ttl: this.scope.windowMs });
  }

  /** What this guard counts, read from the config; called once, by the constructor, so it may use no field of its own. */
  protected abstract scopeOf(config: AppConfig): ExactScope;

  protected override generateKey(_context: ExecutionContext, tracker: string): string {
    return `${this.scope.keyPrefix}:${tracker}`;
  }

  protected override throwThrottlingException(_context: ExecutionContext, detail: ThrottlerLimitDetail): Promise<void> {
    this.metrics.rateLimited.inc(this.scope.labels);
    const context = requestContext.get();
    if (context !== undefined) context.rateLimited = this.scope.labels.scope;
    const windowSeconds = Math.max(1, Math.round(detail.ttl / 1000));
    throw new AppError('rate_limited', {
      headers: { 'retry-after': String(detail.timeToBlockExpire) },
      logReason: `rate limited: ${this.scope.keyPrefix} over ${detail.limit} per ${windowSeconds}s`,
    });
  }
}
