import { Injectable, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ThrottlerGuard, type ThrottlerLimitDetail, type ThrottlerOptions } from '@nestjs/throttler';
import { AppError } from '../common/app-error';
import { requestContext } from '../common/request-context';
import { MetricsService } from '../observability/metrics.service';
import { ExactCounterStorage } from './exact-counter.storage';

/**
 * @nestjs/throttler's guard on the exact shared counters of CONTRACT §4 (ExactCounterStorage):
 * the library's own admission loop (throttlers, tracker, key, storage, "blocked" verdict), with
 * one key per scope and caller instead of its per-route hash, so every endpoint counting toward
 * a scope counts into the same row; its `X-RateLimit-*` headers off; a refusal is §4's 429
 * `rate_limited` with `Retry-After` and the metric and log scope of the refusing scope.
 */
@Injectable()
export abstract class ExactThrottlerGuard extends ThrottlerGuard {
  constructor(
    throttler: ThrottlerOptions,
    storage: ExactCounterStorage,
    reflector: Reflector,
    private readonly metrics: MetricsService,
    /** `gatehouse_rate_limited_total` labels and the log line's scope */
    private readonly labels: { scope: string; route_class: string },
  ) {
    super({ throttlers: [throttler], setHeaders: false }, storage, reflector);
  }

  /** The key of the shared counter: `<prefix>:<tracker>` (e.g. `ip:203.0.113.7`), the same for every route. */
  protected abstract readonly keyPrefix: string;

  protected override generateKey(_context: ExecutionContext, tracker: string): string {
    return `${this.keyPrefix}:${tracker}`;
  }

  protected override throwThrottlingException(_context: ExecutionContext, detail: ThrottlerLimitDetail): Promise<void> {
    this.metrics.rateLimited.inc(this.labels);
    const context = requestContext.get();
    if (context !== undefined) context.rateLimited = this.labels.scope;
    const windowSeconds = Math.max(1, Math.round(detail.ttl / 1000));
    throw new AppError('rate_limited', {
      headers: { 'retry-after': String(detail.timeToBlockExpire) },
      logReason: `rate limited: ${this.keyPrefix} over ${detail.limit} per ${windowSeconds}s`,
    });
  }
}
