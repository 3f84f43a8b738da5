import { Injectable } from '@nestjs/common';
import type { PreparedAuditRecord } from '../audit/audit.service';
import { hashToken } from '../common/opaque-token';
import { queryPrepared, type PreparedStatement } from '../database/prisma.service';
import type { Db } from '../database/transaction';
import type { SealedValue } from '../common/sealed-column';
import type { RefreshToken, Session, User } from '../generated/prisma/client';

export type RefreshTokenWithSession = RefreshToken & { session: Session & { user: User } };

/** What refresh_rotate() (migration 20261130112500_refresh_rotate) answers. */
export type RotationRow =
  | { outcome: 'refused'; reason: string }
  | {
      outcome: 'issued' | 'replay' | 'reuse';
      /** the presented token's row */
      tokenId: string;
      session: { id: string; amr: string[]; expiresAt: Date };
      user: { id: string; email: string; emailVerifiedAt: Date | null; displayName: string | null };
      /** replay: what the winner sealed */
      successorSealed: string | null;
      /** replay and reuse: when the presented token was spent */
      spentAt: Date | null;
    };

interface RotationResultRow {
  r_outcome: 'issued' | 'replay' | 'reuse' | 'refused';
  r_reason: string | null;
  r_token_id: string | null;
  r_session_id: string | null;
  r_amr: string[] | null;
  r_session_expires_at: Date | null;
  r_user_id: string | null;
  r_email: string | null;
  r_email_verified_at: Date | null;
  r_display_name: string | null;
  r_successor_sealed: string | null;
  r_spent_at: Date | null;
}

const SESSION_START: PreparedStatement = {
  name: 'session_start',
  text: `SELECT session_start($1, $2, $3::text[], $4, $5, $6::timestamptz, $7, $8, $9::timestamptz, $10::text[], $11::jsonb, $12::text[]) AS seq`,
};

const REFRESH_ROTATE: PreparedStatement = {
  name: 'refresh_rotate',
  text: `SELECT * FROM refresh_rotate($1, $2, $3, $4, $5::int, $6::int)`,
};

const STORE_REPLAY_RESPONSES: PreparedStatement = {
  name: 'refresh_store_replays',
  text: `UPDATE refresh_tokens AS t SET successor_sealed = v.sealed
    FROM unnest($1::text[], $2::text[], $3::text[]) AS v(id, successor_id, sealed)
    WHERE t.id = v.id AND t.successor_id = v.successor_id`,
};

@Injectable()
export class SessionRepository {
  createSession(db: Db, input: { userId: string; amr: string[]; ip?: string; userAgent?: string; expiresAt: Date }): Promise<Session> {
    return db.session.create({
      data: { userId: input.userId, amr: input.amr, ip: input.ip ?? null, userAgent: input.userAgent ?? null, expiresAt: input.expiresAt },
    });
  }

  /**
   * A sign-in's writes in one statement, session_start() (migration *_session_start_audit_pending):
   * clears `clearCounterKeys`, inserts the session and its refresh token, and queues the prepared
   * audit record in audit_pending (chained when the transaction commits).
   */
  async startSignedIn(
    db: Db,
    input: {
      session: { id: string; userId: string; amr: string[]; ip?: string; userAgent?: string; expiresAt: Date };
      refresh: { id: string; token: string; expiresAt: Date };
      clearCounterKeys: string[];
      audit: PreparedAuditRecord;
    },
  ): Promise<void> {
    const { session, refresh, audit } = input;
    await queryPrepared(db, SESSION_START, [
      session.id,
      session.userId,
      session.amr,
      session.ip ?? null,
      session.userAgent ?? null,
      session.expiresAt,
      refresh.id,
      hashToken(refresh.token),
      refresh.expiresAt,
      input.clearCounterKeys,
      JSON.stringify(audit.content),
      audit.parts,
    ]);
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

  /**
   * One round trip: compare-and-set on the presented token, successor insert and session touch
   * (or the replay / reuse / refusal verdict), by the SQL function refresh_rotate().
   */
  async rotateRefreshToken(
    db: Db,
    input: {
      token: string;
      successorId: string;
      successorToken: string;
      successorSealed: string;
      ttlSeconds: number;
      graceSeconds: number;
    },
  ): Promise<RotationRow> {
    const rows = await queryPrepared<RotationResultRow>(db, REFRESH_ROTATE, [
      hashToken(input.token),
      input.successorId,
      hashToken(input.successorToken),
      input.successorSealed,
      input.ttlSeconds,
      input.graceSeconds,
    ]);
    const row = rows[0];
    if (row === undefined) throw new Error('refresh_rotate() returned no row');
    if (row.r_outcome === 'refused' || row.r_token_id === null || row.r_session_id === null || row.r_user_id === null) {
      return { outcome: 'refused', reason: row.r_reason ?? 'unknown refresh token' };
    }
    return {
      outcome: row.r_outcome,
      tokenId: row.r_token_id,
      session: { id: row.r_session_id, amr: row.r_amr ?? [], expiresAt: new Date(row.r_session_expires_at!) },
      user: {
        id: row.r_user_id,
        email: row.r_email!,
        emailVerifiedAt: row.r_email_verified_at === null ? null : new Date(row.r_email_verified_at),
        displayName: row.r_display_name,
      },
      successorSealed: row.r_successor_sealed,
      spentAt: row.r_spent_at === null ? null : new Date(row.r_spent_at),
    };
  }

  /**
   * Stores the sealed successor responses of spent tokens (id → sealed), one statement for
   * the batch. Never touches a token whose successor is not the one sealed (successor_id).
   */
  async storeReplayResponses(db: Db, items: Array<{ id: string; successorId: string; sealed: string }>): Promise<void> {
    if (items.length === 0) return;
    await queryPrepared(db, STORE_REPLAY_RESPONSES, [
      items.map((item) => item.id),
      items.map((item) => item.successorId),
      items.map((item) => item.sealed),
    ]);
  }

  async successorSealed(db: Db, id: string): Promise<string | null> {
    const row = await db.refreshToken.findUnique({ where: { id }, select: { successorSealed: true } });
    return row?.successorSealed ?? null;
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

  /** A new primary authentication on this session (reauth); `amr` gains `otp` when it was a second factor. */
  async markAuthenticated(db: Db, id: string, addAmr?: string): Promise<boolean> {
    const session = await db.session.findUnique({ where: { id }, select: { amr: true, revokedAt: true, expiresAt: true } });
    if (session === null || session.revokedAt !== null || session.expiresAt.getTime() <= Date.now()) return false;
    const amr = addAmr === undefined || session.amr.includes(addAmr) ? session.amr : [...session.amr, addAmr];
    await db.session.update({ where: { id }, data: { authenticatedAt: new Date(), amr } });
    return true;
  }

  /** Revokes every live session of the user except `keep`; returns the ids it revoked. */
  async revokeOthers(db: Db, userId: string, keep: string | undefined, reason: string): Promise<string[]> {
    const live = await db.session.findMany({
      where: { userId, revokedAt: null, ...(keep !== undefined ? { id: { not: keep } } : {}) },
      select: { id: true },
    });
    return live.length === 0 ? [] : this.revokeSessions(db, { ids: live.map((session) => session.id) }, reason);
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

  /** Sealed successor responses (kept for the grace replay) in id order, for the master-key re-seal. */
  async sealedSuccessorPage(db: Db, afterId: string | undefined, limit: number): Promise<SealedValue[]> {
    const rows = await db.refreshToken.findMany({
      where: { successorSealed: { not: null }, ...(afterId === undefined ? {} : { id: { gt: afterId } }) },
      orderBy: { id: 'asc' },
      take: limit,
      select: { id: true, successorSealed: true },
    });
    return rows.map((row) => ({ id: row.id, sealed: row.successorSealed ?? '' }));
  }

  /** Compare-and-set: false when the row changed since it was read. */
  async replaceSealedSuccessor(db: Db, id: string, from: string, to: string): Promise<boolean> {
    const { count } = await db.refreshToken.updateMany({ where: { id, successorSealed: from }, data: { successorSealed: to } });
    return count === 1;
  }
}
