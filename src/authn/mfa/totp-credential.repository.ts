import { Injectable } from '@nestjs/common';
import type { Db } from '../../database/transaction';
import { isUniqueViolation } from '../../database/transaction';
import type { SealedValue } from '../../common/sealed-column';
import type { TotpCredential } from '../../generated/prisma/client';

/** TOTP secrets (sealed) and the last accepted time step per user. */
@Injectable()
export class TotpCredentialRepository {
  find(db: Db, userId: string): Promise<TotpCredential | null> {
    return db.totpCredential.findUnique({ where: { userId } });
  }

  async isConfirmed(db: Db, userId: string): Promise<boolean> {
    return (await db.totpCredential.count({ where: { userId, confirmedAt: { not: null } } })) > 0;
  }

  /**
   * Stores a pending secret, replacing an earlier pending one. Returns false (and changes
   * nothing) when the user already has a confirmed TOTP.
   */
  async savePending(db: Db, userId: string, secretSealed: string): Promise<boolean> {
    const { count } = await db.totpCredential.updateMany({
      where: { userId, confirmedAt: null },
      data: { secretSealed, lastUsedStep: null },
    });
    if (count === 1) return true;
    try {
      await db.totpCredential.create({ data: { userId, secretSealed } });
      return true;
    } catch (error) {
      if (isUniqueViolation(error)) return false;
      throw error;
    }
  }

  /** Compare-and-set: confirms exactly the pending secret that was checked, recording the code's step. */
  async confirm(db: Db, userId: string, secretSealed: string, step: number): Promise<boolean> {
    const { count } = await db.totpCredential.updateMany({
      where: { userId, secretSealed, confirmedAt: null },
      data: { confirmedAt: new Date(), lastUsedStep: step },
    });
    return count === 1;
  }

  /**
   * Compare-and-set on the last accepted step: of two requests presenting the same code, on
   * any replica, exactly one moves the step forward (the row lock orders them).
   */
  async acceptStep(db: Db, userId: string, step: number): Promise<boolean> {
    const { count } = await db.totpCredential.updateMany({
      where: { userId, confirmedAt: { not: null }, OR: [{ lastUsedStep: null }, { lastUsedStep: { lt: step } }] },
      data: { lastUsedStep: step },
    });
    return count === 1;
  }

  /**
   * Reserves one second-factor attempt: counts it among the failures since the last accepted
   * factor (atomic, every replica) before the code is checked. Null without a confirmed TOTP.
   */
  async countAttempt(db: Db, userId: string): Promise<number | null> {
    const rows = await db.$queryRaw<Array<{ failed_attempts: number }>>`
      UPDATE totp_credentials SET failed_attempts = failed_attempts + 1
      WHERE user_id = ${userId} AND confirmed_at IS NOT NULL RETURNING failed_attempts`;
    return rows[0]?.failed_attempts ?? null;
  }

  /** After an accepted factor, a password reset or an admin unlock. True when there were failures to clear. */
  async clearFailures(db: Db, userId: string): Promise<boolean> {
    const { count } = await db.totpCredential.updateMany({ where: { userId, failedAttempts: { gt: 0 } }, data: { failedAttempts: 0 } });
    return count > 0;
  }

  /** Whether there was one to delete. */
  async delete(db: Db, userId: string): Promise<boolean> {
    const { count } = await db.totpCredential.deleteMany({ where: { userId } });
    return count > 0;
  }

  /** Sealed TOTP secrets in user-id order, for the master-key re-seal. */
  async sealedPage(db: Db, afterId: string | undefined, limit: number): Promise<SealedValue[]> {
    const rows = await db.totpCredential.findMany({
      where: afterId === undefined ? {} : { userId: { gt: afterId } },
      orderBy: { userId: 'asc' },
      take: limit,
      select: { userId: true, secretSealed: true },
    });
    return rows.map((row) => ({ id: row.userId, sealed: row.secretSealed }));
  }

  /** Compare-and-set: false when the secret changed since it was read. */
  async replaceSealed(db: Db, userId: string, from: string, to: string): Promise<boolean> {
    const { count } = await db.totpCredential.updateMany({ where: { userId, secretSealed: from }, data: { secretSealed: to } });
    return count === 1;
  }
}
