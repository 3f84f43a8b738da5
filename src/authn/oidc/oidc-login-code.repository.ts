import { Injectable } from '@nestjs/common';
import { hashToken, newOpaqueToken } from '../../common/opaque-token';
import type { Db } from '../../database/transaction';
import type { User } from '../../generated/prisma/client';

/** One-time `login_code`s handed to `return_to`; only their hash is stored. */
@Injectable()
export class OidcLoginCodeRepository {
  async issue(db: Db, userId: string, amr: string[], ttlSeconds: number): Promise<string> {
    const code = newOpaqueToken();
    const now = Date.now();
    await db.oidcLoginCode.deleteMany({ where: { expiresAt: { lt: new Date(now - 3600_000) } } });
    await db.oidcLoginCode.create({ data: { codeHash: hashToken(code), userId, amr, expiresAt: new Date(now + ttlSeconds * 1000) } });
    return code;
  }

  /** Compare-and-set: the code's user and methods for exactly one caller, before expiry; null otherwise. */
  async consume(db: Db, code: string): Promise<{ user: User; amr: string[] } | null> {
    const codeHash = hashToken(code);
    const { count } = await db.oidcLoginCode.updateMany({
      where: { codeHash, usedAt: null, expiresAt: { gt: new Date() } },
      data: { usedAt: new Date() },
    });
    if (count !== 1) return null;
    return db.oidcLoginCode.findUnique({ where: { codeHash }, select: { user: true, amr: true } });
  }
}
