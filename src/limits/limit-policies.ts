import type { Rate } from '../config/config-values';

/**
 * One scope's limit in the throttler's terms: a bucket of `limit` tokens (the burst) refilled
 * over `ttl` ms, i.e. `rate.limit` calls per `rate.periodMs` smoothly.
 */
export interface ScopePolicy {
  limit: number;
  ttl: number;
  rate: Rate;
  burst: number;
  /** `RateLimit-Policy` item, e.g. `"tenant";q=6000;w=60` */
  header: string;
}

/** Default burst of §9: one tenth of N, at least 1. */
export function defaultBurst(rate: Rate): number {
  return Math.max(1, Math.floor(rate.limit / 10));
}

/** The policy of one scope, or undefined when the rate is 0 (scope disabled). */
export function scopePolicy(scope: string, rate: Rate, burst: number | undefined): ScopePolicy | undefined {
  if (rate.limit === 0) return undefined;
  const size = burst ?? defaultBurst(rate);
  return {
    limit: size,
    ttl: (size * rate.periodMs) / rate.limit,
    rate,
    burst: size,
    header: `"${scope}";q=${rate.limit};w=${Math.max(1, Math.round(rate.periodMs / 1000))}`,
  };
}

/** Writes a rate back in the configuration syntax (`100/60s`). */
export function formatRate(rate: Rate): string {
  if (rate.limit === 0) return '0';
  if (rate.periodMs % 1000 !== 0) return `${rate.limit}/${rate.periodMs}ms`;
  return `${rate.limit}/${rate.periodMs / 1000}s`;
}
