import { Injectable } from '@nestjs/common';
import type { ThrottlerStorage } from '@nestjs/throttler';

type ThrottlerStorageRecord = Awaited<ReturnType<ThrottlerStorage['increment']>>;

/** One bucket: tokens left as of `at`, and what the shared budget needs to know about it. */
export interface Bucket {
  tokens: number;
  at: number;
  /** this replica's part of the service-wide budget (1 alone; SharedBudget sets it) */
  share: number;
  /** calls asked for (admitted or not) since the last demand report */
  attempts: number;
  /** the bucket's full size and refill time at its last use (for the idle sweep) */
  limit: number;
  ttl: number;
}

/** What a take reports, besides the throttler's record: the tokens left for the RateLimit header. */
export interface TakeResult extends ThrottlerStorageRecord {
  remaining: number;
}

const IDLE_SWEEP_MS = 10_000;

/**
 * The throttler storage of the proxied scopes (CONTRACT §9): a token bucket per key, in this
 * process's memory, so a check is one map lookup and some arithmetic. Read in the throttler's
 * terms, `limit` calls per `ttl` ms means a bucket of `limit` tokens (the burst) refilled
 * smoothly over `ttl` (so `limit / ttl` is the rate): no window edge lets twice the rate
 * through. The service-wide budget is kept by scaling each bucket by this replica's `share`
 * (SharedBudget, docs/decisions.md "Traffic limits").
 */
@Injectable()
export class TokenBucketStorage implements ThrottlerStorage {
  readonly buckets = new Map<string, Bucket>();
  private lastSweep = Date.now();

  /** The ThrottlerStorage contract; `blockDuration` has no meaning for a token bucket. */
  increment(key: string, ttl: number, limit: number): Promise<ThrottlerStorageRecord> {
    return Promise.resolve(this.take(key, ttl, limit, Date.now()));
  }

  /** Takes one token from `key`'s bucket when there is one. */
  take(key: string, ttl: number, limit: number, now: number): TakeResult {
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      if (now - this.lastSweep > IDLE_SWEEP_MS) this.sweep(now);
      bucket = { tokens: limit * this.initialShare(key), at: now, share: this.initialShare(key), attempts: 0, limit, ttl };
      this.buckets.set(key, bucket);
    }
    bucket.limit = limit;
    bucket.ttl = ttl;
    bucket.attempts++;
    const capacity = limit * bucket.share;
    const perMs = capacity / ttl;
    const tokens = Math.min(capacity, bucket.tokens + (now - bucket.at) * perMs);
    bucket.at = now;
    if (tokens >= 1) {
      bucket.tokens = tokens - 1;
      return {
        totalHits: Math.ceil(limit - bucket.tokens),
        timeToExpire: Math.ceil((capacity - bucket.tokens) / perMs / 1000),
        isBlocked: false,
        timeToBlockExpire: 0,
        remaining: Math.floor(bucket.tokens),
      };
    }
    bucket.tokens = tokens;
    const wait = perMs > 0 ? Math.max(1, Math.ceil((1 - tokens) / perMs / 1000)) : Math.ceil(ttl / 1000);
    return { totalHits: limit + 1, timeToExpire: wait, isBlocked: true, timeToBlockExpire: wait, remaining: 0 };
  }

  /** Gives back the token of a call another scope refused after this one admitted it. */
  refund(key: string): void {
    const bucket = this.buckets.get(key);
    if (bucket !== undefined) bucket.tokens = Math.min(bucket.limit * bucket.share, bucket.tokens + 1);
  }

  /** Share a new bucket starts with; SharedBudget overrides it with what the replicas agreed. */
  initialShare(key: string): number {
    void key;
    return 1;
  }

  /** Forgets buckets that have been full (idle) long enough: they would start full anyway. */
  sweep(now: number): void {
    this.lastSweep = now;
    for (const [key, bucket] of this.buckets) {
      if (now - bucket.at > bucket.ttl) this.buckets.delete(key);
    }
  }
}
