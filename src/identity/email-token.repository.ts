import { Injectable } from '@nestjs/common';
import { hashToken, newOpaqueToken } from '../common/opaque-token';
import type { Db } from '../database/transaction';
import type { User } from '../generated/prisma/client';

export type EmailTokenPurpose = 'verify_email' | 'reset_password' | 'change_email';

@Injectable()
export class EmailTokenRepository {
  /**
   * Issues a new one-time token; older unused tokens of the same purpose stop working.
   * `newEmail`: for change_email, the address the account moves to once the token is used.
   */
  async issue(db: Db, userId: string, purpose: EmailTokenPurpose, ttlSeconds: number, newEmail?: string): Promise<string> {
    const token = newOpaqueToken();
    const now = new Date();
    await db.emailToken.updateMany({ where: { userId, purpose, usedAt: null }, data: { usedAt: now } });
    await db.emailToken.create({
      data: {
        userId,
        purpose,
        tokenHash: hashToken(token),
        newEmail: newEmail ?? null,
        expiresAt: new Date(now.getTime() + ttlSeconds * 1000),
      },
    });
    return token;
  }

  /**
   * Spends a token of one of `purposes` by compare-and-set; null when unknown, used, expired or
   * of another purpose. One link in a mail proves the address whatever the mail was about.
   */
  async consumeAny(
    db: Db,
    token: string,
    purposes: EmailTokenPurpose[],
  ): Promise<{ userId: string; purpose: EmailTokenPurpose; newEmail: string | null } | null> {
    const tokenHash = hashToken(token);
    const row = await db.emailToken.findUnique({ where: { tokenHash }, select: { userId: true, purpose: true, newEmail: true } });
    if (row === null || !purposes.includes(row.purpose as EmailTokenPurpose)) return null;
    const { count } = await db.emailToken.updateMany({
      where: { tokenHash, usedAt: null, expiresAt: { gt: new Date() } },
      data: { usedAt: new Date() },
    });
    return count === 1 ? { userId: row.userId, purpose: row.purpose as EmailTokenPurpose, newEmail: row.newEmail } : null;
  }

  /** The token's user when the token is still usable (nothing is spent). */
  async findUsable(db: Db, token: string, purpose: EmailTokenPurpose): Promise<{ userId: string; user: User } | null> {
    const row = await db.emailToken.findUnique({ where: { tokenHash: hashToken(token) }, include: { user: true } });
    if (row === null || row.purpose !== purpose || row.usedAt !== null || row.expiresAt.getTime() <= Date.now()) return null;
    return { userId: row.userId, user: row.user };
  }

  /** Spends a token by compare-and-set; returns its user, or null when unknown, used or expired. */
  async consume(db: Db, token: string, purpose: EmailTokenPurpose): Promise<string | null> {
    const tokenHash = hashToken(token);
    const row = await db.emailToken.findUnique({ where: { tokenHash }, select: { userId: true, purpose: true } });
    if (row === null || row.purpose !== purpose) return null;
    const { count } = await db.emailToken.updateMany({
      where: { tokenHash, usedAt: null, expiresAt: { gt: new Date() } },
      data: { usedAt: new Date() },
    });
    return count === 1 ? row.userId : null;
  }
}
