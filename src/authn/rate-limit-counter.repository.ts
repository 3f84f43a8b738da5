import { Injectable } from '@nestjs/common';
import { queryPrepared, type PreparedStatement } from '../database/prisma.service';
import type { Db } from '../database/transaction';
import { SIGNIN_ACCOUNT_SQL, signinAccount, type SigninAccount, type SigninAccountRow } from '../identity/user.repository';

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

/** rate_limit_chain() (migration 20261130165121_rate_limit_chain): every count of the limiter, one statement. */
const HIT_CHAIN: PreparedStatement = {
  name: 'rate_limit_chain',
  text: `SELECT counts, retry_after FROM rate_limit_chain($1::text[], $2::text[], $3::int[], $4::int)`,
};

/**
 * A password sign-in's first round trip: the attempt's counters, then the account (read after
 * the counts, in the same statement; the CTE runs the function exactly once). The account is
 * read only when every counter of the chain is within its limit (the last one counted is, and
 * the chain counted them all): a refused attempt never looks at it, so a refusal costs the same
 * for a known and an unknown address. OFFSET 0 keeps the planner from pulling the subquery up,
 * so the condition (it names only `hit`) is a one-time filter in front of the account read
 * (EXPLAIN: "One-Time Filter", the read "never executed"), not a join filter run after it.
 */
const HIT_CHAIN_AND_FIND_ACCOUNT: PreparedStatement = {
  name: 'rate_limit_chain_signin_account_within',
  text: `WITH hit AS MATERIALIZED (SELECT counts, retry_after FROM rate_limit_chain($1::text[], $2::text[], $3::int[], $4::int))
    SELECT hit.counts, hit.retry_after, account.* FROM hit LEFT JOIN LATERAL (
      SELECT * FROM (${SIGNIN_ACCOUNT_SQL('$5')}) signin_account
      WHERE cardinality(hit.counts) = cardinality($1::text[])
        AND hit.counts[cardinality(hit.counts)] <= ($3::int[])[cardinality($3::int[])]
      OFFSET 0
    ) account ON true`,
};

const RELEASE: PreparedStatement = {
  name: 'rate_limit_release',
  text: `UPDATE rate_limit_counters SET count = GREATEST(count - 1, 0) WHERE key = ANY ($1::text[])`,
};

interface ChainRow {
  counts: number[];
  retry_after: number[];
}

function chainValues(links: ChainLink[], windowSeconds: number): unknown[] {
  return [links.map((link) => link.key), links.map((link) => link.account ?? null), links.map((link) => link.limit), windowSeconds];
}

/** The hits in link order; null for a counter the chain stopped before. */
function hits(links: ChainLink[], row: ChainRow): Array<CounterHit | null> {
  return links.map((_, index) => {
    const count = row.counts[index];
    return count === undefined ? null : { count, retryAfterSeconds: row.retry_after[index] ?? 1 };
  });
}

/**
 * Fixed-window counters shared by every replica. One atomic upsert both counts and reports,
 * so parallel attempts on several replicas are counted exactly.
 */
@Injectable()
export class RateLimitCounterRepository {
  /** Counts one hit on `key` in the current window (a new window starts once the old one is over). */
  async hit(db: Db, key: string, windowSeconds: number): Promise<CounterHit> {
    // the limit only matters between links of a chain
    const [hit] = await this.hitChain(db, [{ key, limit: 0 }], windowSeconds);
    return hit!;
  }

  /** Gives back one hit on each of `keys` (an attempt that was reserved but never made). */
  async release(db: Db, keys: string[]): Promise<void> {
    await queryPrepared(db, RELEASE, [keys]);
  }

  /**
   * Counts one hit on the first counter and, only while each leaves its counter within its
   * limit, one on the next: several consume() calls in one statement (the client IP, then the
   * account from that IP, then the account from everywhere). An entry is null when not counted.
   */
  async hitChain(db: Db, links: ChainLink[], windowSeconds: number): Promise<Array<CounterHit | null>> {
    const [row] = await queryPrepared<ChainRow>(db, HIT_CHAIN, chainValues(links, windowSeconds));
    return hits(links, row!);
  }

  /** `hitChain`, then the account a password sign-in checks (UserRepository.findForSignin's read), in one round trip. */
  async hitChainAndFindSigninAccount(
    db: Db,
    links: ChainLink[],
    windowSeconds: number,
    email: string,
  ): Promise<{ hits: Array<CounterHit | null>; account: SigninAccount | null }> {
    const [row] = await queryPrepared<ChainRow & SigninAccountRow>(db, HIT_CHAIN_AND_FIND_ACCOUNT, [
      ...chainValues(links, windowSeconds),
      email,
    ]);
    return { hits: hits(links, row!), account: signinAccount(row!) };
  }

  /** Removes the counters with these keys and every counter of these accounts; returns how many there were. */
  async clear(db: Db, keys: string[], accounts: string[] = []): Promise<number> {
    const { count } = await db.rateLimitCounter.deleteMany({
      where: { OR: [{ key: { in: keys } }, { account: { in: accounts } }] },
    });
    return count;
  }
}
