import { Injectable } from '@nestjs/common';
import type { Db } from '../database/transaction';

/**
 * Fixed-window counters shared by every replica. One atomic upsert both counts and reports,
 * so parallel attempts on several replicas are counted exactly.
 */
@Injectable()
export class RateLimitCounterRepository {
  /** Counts one hit on `key` in the current window (a new window starts once the old one is over). */
  async hit(db: Db, key: string, windowSeconds: number): Promise<{ count: number; retryAfterSeconds: number }> {
    const rows = await db.$queryRaw<Array<{ count: number; retry_after: number }>>`
      INSERT INTO rate_limit_counters (key, window_start, count) VALUES (${key}, now(), 1)
      ON CONFLICT (key) DO UPDATE SET
        count = CASE WHEN rate_limit_counters.window_start <= now() - make_interval(secs => ${windowSeconds}) THEN 1 ELSE rate_limit_counters.count + 1 END,
        window_start = CASE WHEN rate_limit_counters.window_start <= now() - make_interval(secs => ${windowSeconds}) THEN now() ELSE rate_limit_counters.window_start END
      RETURNING count,
        GREATEST(1, CEIL(EXTRACT(EPOCH FROM (window_start + make_interval(secs => ${windowSeconds}) - now()))))::int AS retry_after`;
    const row = rows[0]!;
    return { count: row.count, retryAfterSeconds: row.retry_after };
  }

  /** Gives back one hit on `key` (an attempt that was reserved but never made). */
  async release(db: Db, key: string): Promise<void> {
    await db.$executeRaw`UPDATE rate_limit_counters SET count = GREATEST(count - 1, 0) WHERE key = ${key}`;
  }

  /**
   * Counts one hit on `first` and, only when that leaves it within `firstLimit`, one on `second`:
   * two consume() calls in one statement (the IP, then the account). `second` is null when not counted.
   */
  async hitPair(
    db: Db,
    first: string,
    firstLimit: number,
    second: string,
    windowSeconds: number,
  ): Promise<{ first: { count: number; retryAfterSeconds: number }; second: { count: number; retryAfterSeconds: number } | null }> {
    const rows = await db.$queryRaw<
      Array<{ first_count: number; first_retry: number; second_count: number | null; second_retry: number | null }>
    >`
      WITH first AS (
        INSERT INTO rate_limit_counters (key, window_start, count) VALUES (${first}, now(), 1)
        ON CONFLICT (key) DO UPDATE SET
          count = CASE WHEN rate_limit_counters.window_start <= now() - make_interval(secs => ${windowSeconds}) THEN 1 ELSE rate_limit_counters.count + 1 END,
          window_start = CASE WHEN rate_limit_counters.window_start <= now() - make_interval(secs => ${windowSeconds}) THEN now() ELSE rate_limit_counters.window_start END
        RETURNING count, GREATEST(1, CEIL(EXTRACT(EPOCH FROM (window_start + make_interval(secs => ${windowSeconds}) - now()))))::int AS retry_after
      ), second AS (
        INSERT INTO rate_limit_counters (key, window_start, count) SELECT ${second}, now(), 1 FROM first WHERE first.count <= ${firstLimit}
        ON CONFLICT (key) DO UPDATE SET
          count = CASE WHEN rate_limit_counters.window_start <= now() - make_interval(secs => ${windowSeconds}) THEN 1 ELSE rate_limit_counters.count + 1 END,
          window_start = CASE WHEN rate_limit_counters.window_start <= now() - make_interval(secs => ${windowSeconds}) THEN now() ELSE rate_limit_counters.window_start END
        RETURNING count, GREATEST(1, CEIL(EXTRACT(EPOCH FROM (window_start + make_interval(secs => ${windowSeconds}) - now()))))::int AS retry_after
      )
      SELECT first.count AS first_count, first.retry_after AS first_retry, second.count AS second_count, second.retry_after AS second_retry
      FROM first LEFT JOIN second ON true`;
    const row = rows[0]!;
    return {
      first: { count: row.first_count, retryAfterSeconds: row.first_retry },
      second: row.second_count === null ? null : { count: row.second_count, retryAfterSeconds: row.second_retry ?? 1 },
    };
  }

  /** Removes these counters; returns how many there were. */
  async clear(db: Db, keys: string[]): Promise<number> {
    const { count } = await db.rateLimitCounter.deleteMany({ where: { key: { in: keys } } });
    return count;
  }
}
