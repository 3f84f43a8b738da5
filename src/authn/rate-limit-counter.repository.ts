import { Injectable } from '@nestjs/common';
import { Prisma } from '../generated/prisma/client';
import type { Db } from '../database/transaction';

export interface CounterHit {
  count: number;
  retryAfterSeconds: number;
}

/** One counter of a chain: `account` names the account it belongs to (cleared together), if any. */
export interface ChainLink {
  key: string;
  limit: number;
  account?: string;
}

/** Counts one hit on a counter whose window may have ended (a new window then starts with this hit). */
function upsert(key: string, account: string | null, windowSeconds: number, from?: { stage: string; limit: number }): Prisma.Sql {
  const expired = Prisma.sql`rate_limit_counters.window_start <= now() - make_interval(secs => ${windowSeconds})`;
  const values =
    from === undefined
      ? Prisma.sql`VALUES (${key}, ${account}::text, now(), 1)`
      : Prisma.sql`SELECT ${key}, ${account}::text, now(), 1 FROM ${Prisma.raw(from.stage)} WHERE ${Prisma.raw(from.stage)}.count <= ${from.limit}::int`;
  return Prisma.sql`
    INSERT INTO rate_limit_counters (key, account, window_start, count) ${values}
    ON CONFLICT (key) DO UPDATE SET
      count = CASE WHEN ${expired} THEN 1 ELSE rate_limit_counters.count + 1 END,
      window_start = CASE WHEN ${expired} THEN now() ELSE rate_limit_counters.window_start END,
      account = COALESCE(rate_limit_counters.account, EXCLUDED.account)
    RETURNING count, GREATEST(1, CEIL(EXTRACT(EPOCH FROM (window_start + make_interval(secs => ${windowSeconds}) - now()))))::int AS retry_after`;
}

/**
 * Fixed-window counters shared by every replica. One atomic upsert both counts and reports,
 * so parallel attempts on several replicas are counted exactly.
 */
@Injectable()
export class RateLimitCounterRepository {
  /** Counts one hit on `key` in the current window (a new window starts once the old one is over). */
  async hit(db: Db, key: string, windowSeconds: number): Promise<CounterHit> {
    const rows = await db.$queryRaw<Array<{ count: number; retry_after: number }>>`${upsert(key, null, windowSeconds)}`;
    const row = rows[0]!;
    return { count: row.count, retryAfterSeconds: row.retry_after };
  }

  /** Gives back one hit on each of `keys` (an attempt that was reserved but never made). */
  async release(db: Db, keys: string[]): Promise<void> {
    await db.$executeRaw`UPDATE rate_limit_counters SET count = GREATEST(count - 1, 0) WHERE key = ANY (${keys}::text[])`;
  }

  /**
   * Counts one hit on the first counter and, only while each leaves its counter within its
   * limit, one on the next: several consume() calls in one statement (the client IP, then the
   * account from that IP, then the account from everywhere). An entry is null when not counted.
   */
  async hitChain(db: Db, links: ChainLink[], windowSeconds: number): Promise<Array<CounterHit | null>> {
    const stages = links.map((link, index) => {
      const previous = index === 0 ? undefined : { stage: `s${index - 1}`, limit: links[index - 1]!.limit };
      return Prisma.sql`${Prisma.raw(`s${index}`)} AS (${upsert(link.key, link.account ?? null, windowSeconds, previous)})`;
    });
    const columns = links.map((_, index) => Prisma.raw(`s${index}.count AS c${index}, s${index}.retry_after AS r${index}`));
    const joins = links.slice(1).map((_, index) => Prisma.raw(`LEFT JOIN s${index + 1} ON true`));
    const rows = await db.$queryRaw<Array<Record<string, number | null>>>`
      WITH ${Prisma.join(stages, ', ')}
      SELECT ${Prisma.join(columns, ', ')} FROM s0 ${joins.length === 0 ? Prisma.empty : Prisma.join(joins, ' ')}`;
    const row = rows[0]!;
    return links.map((_, index) => {
      const count = row[`c${index}`];
      return count === null || count === undefined ? null : { count, retryAfterSeconds: row[`r${index}`] ?? 1 };
    });
  }

  /** Removes the counters with these keys and every counter of these accounts; returns how many there were. */
  async clear(db: Db, keys: string[], accounts: string[] = []): Promise<number> {
    const { count } = await db.rateLimitCounter.deleteMany({
      where: { OR: [{ key: { in: keys } }, { account: { in: accounts } }] },
    });
    return count;
  }
}
