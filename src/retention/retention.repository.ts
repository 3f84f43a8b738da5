import { Injectable } from '@nestjs/common';
import { PrismaService } from '../database/prisma.service';
import { Prisma } from '../generated/prisma/client';

/** Most rows one DELETE removes: each batch is a short transaction of its own. */
export const PRUNE_BATCH = 1000;

/** Arbitrary, fixed: the advisory lock that lets one replica at a time prune. */
const RETENTION_LOCK_KEY = 7_236_801_514;

export interface PruneCutoffs {
  /** rows expired, revoked or used before this moment go */
  before: Date;
  /** limiter counters whose window started before this moment go */
  countersBefore: Date;
}

/** Rows deleted per table; `null` when another replica held the lock and nothing ran. */
export type PruneResult = Record<PrunedTable, number> | null;

export const PRUNED_TABLES = [
  'sessions',
  'refresh_tokens',
  'email_tokens',
  'mfa_challenges',
  'oidc_states',
  'oidc_login_codes',
  'rate_limit_counters',
] as const;
export type PrunedTable = (typeof PRUNED_TABLES)[number];

/**
 * The one place that deletes other modules' rows, and only by age: nothing here decides what
 * a row means. Sessions take their refresh tokens with them (ON DELETE CASCADE). The audit
 * trail is never touched (its trigger would refuse anyway).
 */
@Injectable()
export class RetentionRepository {
  constructor(private readonly prisma: PrismaService) {}

  /**
   * Deletes in batches of at most PRUNE_BATCH rows per statement, each in its own short
   * transaction holding the lock, so a large backlog never holds row locks (or the lock) for
   * long and live traffic on those tables is not held up. A batch that finds the lock taken by
   * the other replica ends the round: the first one answers null, a later one what was done.
   */
  async prune(cutoffs: PruneCutoffs): Promise<PruneResult> {
    const { before, countersBefore } = cutoffs;
    const statements: Record<PrunedTable, (limit: number) => Prisma.Sql> = {
      sessions: (limit) =>
        Prisma.sql`DELETE FROM sessions WHERE ctid IN (SELECT ctid FROM sessions WHERE expires_at < ${before} OR revoked_at < ${before} LIMIT ${limit})`,
      refresh_tokens: (limit) =>
        Prisma.sql`DELETE FROM refresh_tokens WHERE ctid IN (SELECT ctid FROM refresh_tokens WHERE expires_at < ${before} LIMIT ${limit})`,
      email_tokens: (limit) =>
        Prisma.sql`DELETE FROM email_tokens WHERE ctid IN (SELECT ctid FROM email_tokens WHERE expires_at < ${before} OR used_at < ${before} LIMIT ${limit})`,
      mfa_challenges: (limit) =>
        Prisma.sql`DELETE FROM mfa_challenges WHERE ctid IN (SELECT ctid FROM mfa_challenges WHERE expires_at < ${before} OR used_at < ${before} LIMIT ${limit})`,
      oidc_states: (limit) =>
        Prisma.sql`DELETE FROM oidc_states WHERE ctid IN (SELECT ctid FROM oidc_states WHERE expires_at < ${before} OR used_at < ${before} LIMIT ${limit})`,
      oidc_login_codes: (limit) =>
        Prisma.sql`DELETE FROM oidc_login_codes WHERE ctid IN (SELECT ctid FROM oidc_login_codes WHERE expires_at < ${before} OR used_at < ${before} LIMIT ${limit})`,
      rate_limit_counters: (limit) =>
        Prisma.sql`DELETE FROM rate_limit_counters WHERE ctid IN (SELECT ctid FROM rate_limit_counters WHERE window_start < ${countersBefore} LIMIT ${limit})`,
    };
    const result = Object.fromEntries(PRUNED_TABLES.map((table) => [table, 0])) as Record<PrunedTable, number>;
    let ranAny = false;
    for (const table of PRUNED_TABLES) {
      for (;;) {
        const deleted = await this.prisma.$transaction(async (tx) => {
          // transaction-scoped: released by COMMIT/ROLLBACK even if this process dies mid-way
          const [lock] = await tx.$queryRaw<
            { locked: boolean }[]
          >`SELECT pg_try_advisory_xact_lock(${RETENTION_LOCK_KEY}::bigint) AS locked`;
          if (lock?.locked !== true) return null;
          return tx.$executeRaw(statements[table](PRUNE_BATCH));
        });
        if (deleted === null) return ranAny ? result : null;
        ranAny = true;
        result[table] += deleted;
        if (deleted < PRUNE_BATCH) break;
      }
    }
    return result;
  }
}
