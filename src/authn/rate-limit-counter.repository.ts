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

  /** Removes these counters; returns how many there were. */
  async clear(db: Db, keys: string[]): Promise<number> {
    const { count } = await db.rateLimitCounter.deleteMany({ where: { key: { in: keys } } });
    return count;
  }
}
