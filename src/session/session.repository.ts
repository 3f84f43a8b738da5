import { Injectable } from '@nestjs/common';
import { hashToken } from '../common/opaque-token';
import type { Db } from '../database/transaction';
import type { RefreshToken, Session, User } from '../generated/prisma/client';

export type RefreshTokenWithSession = RefreshToken & { session: Session & { user: User } };

@Injectable()
export class SessionRepository {
  createSession(db: Db, input: { userId: string; amr: string[]; ip?: string; userAgent?: string; expiresAt: Date }): Promise<Session> {
    return db.session.create({
      data: { userId: input.userId, amr: input.amr, ip: input.ip ?? null, userAgent: input.userAgent ?? null, expiresAt: input.expiresAt },
    });
  }

  async insertRefreshToken(db: Db, input: { id?: string; sessionId: string; token: string; expiresAt: Date }): Promise<RefreshToken> {
    return db.refreshToken.create({
      data: { id: input.id, sessionId: input.sessionId, tokenHash: hashToken(input.token), expiresAt: input.expiresAt },
    });
  }

  findRefreshToken(db: Db, token: string): Promise<RefreshTokenWithSession | null> {
    return db.refreshToken.findUnique({
      where: { tokenHash: hashToken(token) },
      include: { session: { include: { user: true } } },
    });
  }

  findRefreshTokenById(db: Db, id: string): Promise<RefreshToken | null> {
    return db.refreshToken.findUnique({ where: { id } });
  }

  /**
   * Compare-and-set: spends the token only if nobody has, recording its successor.
   * Returns false when another request (on any replica) spent it first.
   */
  async spendRefreshToken(db: Db, id: string, successorId: string, successorSealed: string): Promise<boolean> {
    const { count } = await db.refreshToken.updateMany({
      where: { id, spentAt: null },
      data: { spentAt: new Date(), successorId, successorSealed },
    });
    return count === 1;
  }

  async touchSession(db: Db, sessionId: string): Promise<void> {
    await db.session.update({ where: { id: sessionId }, data: { lastUsedAt: new Date() } });
  }

  /** Revokes the sessions that are still live; returns the ids it revoked. */
  async revokeSessions(db: Db, where: { ids?: string[]; userId?: string }, reason: string): Promise<string[]> {
    const live = await db.session.findMany({
      where: {
        revokedAt: null,
        ...(where.ids !== undefined ? { id: { in: where.ids } } : {}),
        ...(where.userId !== undefined ? { userId: where.userId } : {}),
      },
      select: { id: true },
    });
    if (live.length === 0) return [];
    const ids = live.map((session) => session.id);
    await db.session.updateMany({ where: { id: { in: ids }, revokedAt: null }, data: { revokedAt: new Date(), revokeReason: reason } });
    return ids;
  }

  /** Sessions revoked after `since`, with when. */
  async revokedSince(db: Db, since: Date): Promise<Array<{ id: string; revokedAt: Date }>> {
    const rows = await db.session.findMany({ where: { revokedAt: { gt: since } }, select: { id: true, revokedAt: true } });
    return rows.map((row) => ({ id: row.id, revokedAt: row.revokedAt! }));
  }

  findSession(db: Db, id: string): Promise<Session | null> {
    return db.session.findUnique({ where: { id } });
  }

  listLiveForUser(db: Db, userId: string): Promise<Session[]> {
    return db.session.findMany({
      where: { userId, revokedAt: null, expiresAt: { gt: new Date() } },
      orderBy: { createdAt: 'desc' },
    });
  }
}
