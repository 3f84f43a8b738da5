import { Injectable } from '@nestjs/common';
import { hashToken, newOpaqueToken } from '../../common/opaque-token';
import type { Db } from '../../database/transaction';

export interface UsableChallenge {
  id: string;
  userId: string;
  amr: string[];
}

/** `mfa_token`s: opaque, stored hashed, bound to one user, spent once. */
@Injectable()
export class MfaChallengeRepository {
  async issue(db: Db, userId: string, amr: string[], ttlSeconds: number): Promise<string> {
    const token = newOpaqueToken();
    const now = Date.now();
    // housekeeping: challenges long past their end are of no use to anyone
    await db.mfaChallenge.deleteMany({ where: { expiresAt: { lt: new Date(now - 3600_000) } } });
    await db.mfaChallenge.create({
      data: { userId, amr, tokenHash: hashToken(token), expiresAt: new Date(now + ttlSeconds * 1000) },
    });
    return token;
  }

  async findUsable(db: Db, token: string): Promise<UsableChallenge | null> {
    const row = await db.mfaChallenge.findUnique({ where: { tokenHash: hashToken(token) } });
    if (row === null || row.usedAt !== null || row.expiresAt.getTime() <= Date.now()) return null;
    return { id: row.id, userId: row.userId, amr: row.amr };
  }

  /**
   * The challenge behind `token` even when it can no longer be used, so a refusal can tell a
   * token spent by the MFA lock (its owner is locked) from one that never existed.
   */
  async findOwner(db: Db, token: string): Promise<string | null> {
    const row = await db.mfaChallenge.findUnique({ where: { tokenHash: hashToken(token) }, select: { userId: true } });
    return row?.userId ?? null;
  }

  /** Spends every open `mfa_token` of the user (MFA lock); returns how many there were. */
  async spendAllOpen(db: Db, userId: string): Promise<number> {
    const now = new Date();
    const { count } = await db.mfaChallenge.updateMany({ where: { userId, usedAt: null, expiresAt: { gt: now } }, data: { usedAt: now } });
    return count;
  }

  /** Compare-and-set: true for exactly one caller, and only before expiry. */
  async spend(db: Db, id: string): Promise<boolean> {
    const { count } = await db.mfaChallenge.updateMany({
      where: { id, usedAt: null, expiresAt: { gt: new Date() } },
      data: { usedAt: new Date() },
    });
    return count === 1;
  }
}
