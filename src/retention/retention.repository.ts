import { Injectable } from '@nestjs/common';
import { PrismaService } from '../database/prisma.service';

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

  async prune(cutoffs: PruneCutoffs): Promise<PruneResult> {
    return this.prisma.$transaction(
      async (tx) => {
        // transaction-scoped: released by COMMIT/ROLLBACK even if this process dies mid-way
        const [lock] = await tx.$queryRaw<{ locked: boolean }[]>`SELECT pg_try_advisory_xact_lock(${RETENTION_LOCK_KEY}::bigint) AS locked`;
        if (lock?.locked !== true) return null;
        const { before, countersBefore } = cutoffs;
        const sessions = await tx.$executeRaw`DELETE FROM sessions WHERE expires_at < ${before} OR revoked_at < ${before}`;
        const refreshTokens = await tx.$executeRaw`DELETE FROM refresh_tokens WHERE expires_at < ${before}`;
        const emailTokens = await tx.$executeRaw`DELETE FROM email_tokens WHERE expires_at < ${before} OR used_at < ${before}`;
        const mfaChallenges = await tx.$executeRaw`DELETE FROM mfa_challenges WHERE expires_at < ${before} OR used_at < ${before}`;
        const oidcStates = await tx.$executeRaw`DELETE FROM oidc_states WHERE expires_at < ${before} OR used_at < ${before}`;
        const oidcLoginCodes = await tx.$executeRaw`DELETE FROM oidc_login_codes WHERE expires_at < ${before} OR used_at < ${before}`;
        const counters = await tx.$executeRaw`DELETE FROM rate_limit_counters WHERE window_start < ${countersBefore}`;
        return {
          sessions,
          refresh_tokens: refreshTokens,
          email_tokens: emailTokens,
          mfa_challenges: mfaChallenges,
          oidc_states: oidcStates,
          oidc_login_codes: oidcLoginCodes,
          rate_limit_counters: counters,
        };
      },
      { timeout: 120_000, maxWait: 10_000 },
    );
  }
}
