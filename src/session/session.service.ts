import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { AuditService } from '../audit/audit.service';
import { AppError } from '../common/app-error';
import { newOpaqueToken } from '../common/opaque-token';
import { SecretBox } from '../common/secret-box';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { PrismaService } from '../database/prisma.service';
import type { Db } from '../database/transaction';
import type { Session, User } from '../generated/prisma/client';
import { ClusterEventBus } from '../messaging/cluster-event-bus';
import { MetricsService } from '../observability/metrics.service';
import { AccessTokenService } from './access-token.service';
import { RevocationService } from './revocation.service';
import { SessionRepository } from './session.repository';
import { userView, type TokenResponse } from './token-response';

export interface ClientInfo {
  ip?: string;
  userAgent?: string;
}

type RotationOutcome =
  { kind: 'issued'; response: TokenResponse } | { kind: 'reuse'; sessionId: string } | { kind: 'refused'; reason: string };

/** Sessions as refresh-token families: start, rotate (exactly one successor), revoke. */
@Injectable()
export class SessionService {
  private readonly replayBox: SecretBox;

  constructor(
    private readonly prisma: PrismaService,
    private readonly sessions: SessionRepository,
    private readonly accessTokens: AccessTokenService,
    private readonly revocations: RevocationService,
    private readonly events: ClusterEventBus,
    private readonly audit: AuditService,
    private readonly metrics: MetricsService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    this.replayBox = new SecretBox(config.MASTER_KEY, 'refresh-replay');
  }

  /**
   * The one way a sign-in finishes, whatever proved who the user is (password, Google, a second
   * factor): the session, its first token pair and the `auth.signin` record, committed together.
   * Pass `tx` when the caller spends something in the same transaction (an mfa_token, a code).
   */
  async startSignedIn(signIn: { user: User; amr: string[]; client: ClientInfo; secondFactor?: string }, tx?: Db): Promise<TokenResponse> {
    if (tx === undefined) return this.prisma.$transaction((own) => this.startSignedIn(signIn, own));
    const { user, amr } = signIn;
    const tokens = await this.start(tx, user, amr, signIn.client);
    await this.audit.record(tx, {
      action: 'auth.signin',
      actor: { principalId: user.id, principalType: 'user' },
      target: { type: 'session', id: tokens.session_id },
      changes: { amr, second_factor: signIn.secondFactor },
    });
    return tokens;
  }

  /** Starts a session inside the caller's transaction and returns its first token pair. */
  async start(db: Db, user: User, amr: string[], client: ClientInfo): Promise<TokenResponse> {
    const now = Date.now();
    const session = await this.sessions.createSession(db, {
      userId: user.id,
      amr,
      ip: client.ip,
      userAgent: client.userAgent?.slice(0, 512),
      expiresAt: new Date(now + this.config.SESSION_MAX_AGE * 1000),
    });
    const refreshToken = newOpaqueToken();
    await this.sessions.insertRefreshToken(db, { sessionId: session.id, token: refreshToken, expiresAt: this.refreshExpiry(session) });
    return this.tokenResponse(user, session, refreshToken);
  }

  /**
   * Rotates a refresh token. The winner of the compare-and-set issues the successor; a
   * request that lost the race, or a retry within REFRESH_REUSE_GRACE while the successor is
   * unused, gets that same successor; any other reuse revokes the family.
   */
  async rotate(refreshToken: string): Promise<TokenResponse> {
    const outcome = await this.prisma.$transaction(async (tx): Promise<RotationOutcome> => {
      const row = await this.sessions.findRefreshToken(tx, refreshToken);
      if (row === null) return { kind: 'refused', reason: 'unknown refresh token' };
      const { session } = row;
      const now = Date.now();
      if (session.revokedAt !== null) return { kind: 'refused', reason: 'session revoked' };
      if (session.expiresAt.getTime() <= now) return { kind: 'refused', reason: 'session past its absolute lifetime' };
      if (session.user.status !== 'active') return { kind: 'refused', reason: 'account not active' };

      if (row.spentAt === null) {
        if (row.expiresAt.getTime() <= now) return { kind: 'refused', reason: 'refresh token idle-expired' };
        const successorId = randomUUID();
        const successorToken = newOpaqueToken();
        const response = await this.tokenResponse(session.user, session, successorToken);
        if (await this.sessions.spendRefreshToken(tx, row.id, successorId, this.replayBox.seal(JSON.stringify(response)))) {
          await this.sessions.insertRefreshToken(tx, {
            id: successorId,
            sessionId: session.id,
            token: successorToken,
            expiresAt: this.refreshExpiry(session),
          });
          await this.sessions.touchSession(tx, session.id);
          return { kind: 'issued', response };
        }
        // Another request spent it first; read what it committed.
      }

      const spent = await this.sessions.findRefreshTokenById(tx, row.id);
      const successor = spent?.successorId ? await this.sessions.findRefreshTokenById(tx, spent.successorId) : null;
      const withinGrace = spent?.spentAt != null && now - spent.spentAt.getTime() <= this.config.REFRESH_REUSE_GRACE * 1000;
      if (withinGrace && successor !== null && successor.spentAt === null && spent?.successorSealed != null) {
        return { kind: 'issued', response: JSON.parse(this.replayBox.open(spent.successorSealed)) as TokenResponse };
      }
      await this.sessions.revokeSessions(tx, { ids: [session.id] }, 'refresh_reuse');
      await this.audit.record(tx, {
        action: 'session.refresh_reuse_detected',
        actor: { principalId: session.userId, principalType: 'user' },
        target: { type: 'session', id: session.id },
        changes: { spent_at: spent?.spentAt?.toISOString() ?? null },
      });
      return { kind: 'reuse', sessionId: session.id };
    });

    switch (outcome.kind) {
      case 'issued':
        return outcome.response;
      case 'reuse':
        this.metrics.refreshReuseDetected.inc();
        await this.announceRevoked([outcome.sessionId]);
        throw new AppError('invalid_grant', { logReason: `refresh token reuse: session ${outcome.sessionId} revoked` });
      case 'refused':
        throw new AppError('invalid_grant', { logReason: `refresh refused: ${outcome.reason}` });
    }
  }

  /** Revokes sessions inside the caller's transaction; call `announceRevoked` after commit. */
  revokeIn(db: Db, where: { ids?: string[]; userId?: string }, reason: string): Promise<string[]> {
    return this.sessions.revokeSessions(db, where, reason);
  }

  /** Makes the revocation effective on this replica now and on the others within the second. */
  async announceRevoked(sessionIds: string[]): Promise<void> {
    if (sessionIds.length === 0) return;
    this.revocations.markSessionsRevoked(sessionIds);
    await this.events.publish('session.revoked', { sessionIds });
  }

  private refreshExpiry(session: Session): Date {
    return new Date(Math.min(Date.now() + this.config.REFRESH_TOKEN_TTL * 1000, session.expiresAt.getTime()));
  }

  private async tokenResponse(user: User, session: Session, refreshToken: string): Promise<TokenResponse> {
    const access = await this.accessTokens.mint({
      sub: user.id,
      sid: session.id,
      amr: session.amr,
      principalType: 'user',
      notAfter: session.expiresAt,
    });
    return {
      access_token: access.token,
      token_type: 'Bearer',
      expires_in: access.expiresIn,
      refresh_token: refreshToken,
      session_id: session.id,
      user: userView(user),
    };
  }
}
