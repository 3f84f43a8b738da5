import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { AuditService, type AuditEvent } from '../audit/audit.service';
import { AppError } from '../common/app-error';
import { newOpaqueToken } from '../common/opaque-token';
import { uuidv7 } from '../common/uuid';
import { SecretBox } from '../common/secret-box';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { PrismaService } from '../database/prisma.service';
import type { Db } from '../database/transaction';
import type { Session } from '../generated/prisma/client';
import { ClusterEventBus } from '../messaging/cluster-event-bus';
import { LOGGER } from '../observability/logger';
import { MetricsService } from '../observability/metrics.service';
import { AccessTokenService } from './access-token.service';
import { RevocationService } from './revocation.service';
import { SessionRepository } from './session.repository';
import { userView, type TokenResponse } from './token-response';

/** How long a grace-window retry waits for the winner's response to be written back, and how often it looks. */
const REPLAY_WAIT_MS = 1000;
const REPLAY_POLL_MS = 10;
/** Most winner responses written back by one statement. */
const REPLAY_BATCH = 256;
/** The purpose under which replayable refresh responses are sealed with MASTER_KEY. */
export const REFRESH_REPLAY_PURPOSE = 'refresh-replay';

/** What a sign-in needs to know of the user (a full User row, or what the sign-in query read). */
export type SignedInUser = Parameters<typeof userView>[0];

export interface ClientInfo {
  ip?: string;
  userAgent?: string;
}

/** The `amr` value of a session whose sign-in (or a later reauth) included a second factor. */
export const SECOND_FACTOR_AMR = 'otp';

/** Sessions as refresh-token families: start, rotate (exactly one successor), revoke. */
@Injectable()
export class SessionService {
  private readonly replayBox: SecretBox;
  private readonly pendingReplays: Array<{ id: string; successorId: string; sealed: string }> = [];
  private replayFlush: Promise<void> | undefined;

  constructor(
    private readonly prisma: PrismaService,
    private readonly sessions: SessionRepository,
    private readonly accessTokens: AccessTokenService,
    private readonly revocations: RevocationService,
    private readonly events: ClusterEventBus,
    private readonly audit: AuditService,
    private readonly metrics: MetricsService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.replayBox = new SecretBox(config.MASTER_KEY, REFRESH_REPLAY_PURPOSE, config.MASTER_KEY_PREVIOUS);
  }

  /**
   * The one way a sign-in finishes, whatever proved who the user is (password, Google, a second
   * factor): the session, its first token pair and the `auth.signin` record, committed together.
   * Pass `tx` when the caller spends something in the same transaction (an mfa_token, a code).
   */
  async startSignedIn(
    signIn: { user: SignedInUser; amr: string[]; client: ClientInfo; secondFactor?: string; clearCounterKeys?: string[] },
    tx?: Db,
  ): Promise<TokenResponse> {
    const { user, amr } = signIn;
    const signinEvent = (sessionId: string): AuditEvent => ({
      action: 'auth.signin',
      actor: { principalId: user.id, principalType: 'user' },
      target: { type: 'session', id: sessionId },
      changes: { amr, second_factor: signIn.secondFactor },
    });
    // One statement, session_start(): counters, session, refresh token and audit record together.
    // Ids are made here, so the tokens can be signed before the statement runs.
    const session = { id: uuidv7(), amr, expiresAt: new Date(Date.now() + this.config.SESSION_MAX_AGE * 1000) };
    const refreshToken = newOpaqueToken();
    const start = {
      session: { ...session, userId: user.id, ip: signIn.client.ip, userAgent: signIn.client.userAgent?.slice(0, 512) },
      refresh: { id: randomUUID(), token: refreshToken, expiresAt: this.refreshExpiry(session) },
      clearCounterKeys: signIn.clearCounterKeys ?? [],
      audit: this.audit.prepare(signinEvent(session.id)),
    };
    // Inside the caller's transaction it may run anywhere: the record is linked into the chain
    // when that transaction commits; should it roll back, these tokens are never sent.
    await this.sessions.startSignedIn(tx ?? this.prisma, start);
    this.audit.appended();
    return this.tokenResponse(user, session, refreshToken);
  }

  /** Starts a session inside the caller's transaction and returns its first token pair. */
  async start(db: Db, user: SignedInUser, amr: string[], client: ClientInfo): Promise<TokenResponse> {
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
   * Rotates a refresh token in one database round trip (refresh_rotate()). The winner of the
   * compare-and-set issues the successor; a request that lost the race, or a retry within
   * REFRESH_REUSE_GRACE while the successor is unused, gets that same successor refresh token
   * (with a freshly signed access token for the same session); any other reuse revokes the family.
   */
  async rotate(refreshToken: string): Promise<TokenResponse> {
    const successorToken = newOpaqueToken();
    const successorId = randomUUID();
    const row = await this.sessions.rotateRefreshToken(this.prisma, {
      token: refreshToken,
      successorId,
      successorToken,
      successorSealed: this.replayBox.seal(successorToken),
      ttlSeconds: this.config.REFRESH_TOKEN_TTL,
      graceSeconds: this.config.REFRESH_REUSE_GRACE,
    });
    switch (row.outcome) {
      case 'issued': {
        const response = await this.tokenResponse(row.user, row.session, successorToken);
        this.storeReplayLater({ id: row.tokenId, successorId, sealed: this.replayBox.seal(JSON.stringify(response)) });
        return response;
      }
      case 'replay':
        return this.replayed(row.tokenId, row.successorSealed!, row.user, row.session);
      case 'reuse':
        await this.revokeReusedFamily(row.session.id, row.user.id, row.spentAt);
        throw new AppError('invalid_grant', { logReason: `refresh token reuse: session ${row.session.id} revoked` });
      case 'refused':
        throw new AppError('invalid_grant', { logReason: `refresh refused: ${row.reason}` });
    }
  }

  /** Reuse of a spent token: the whole family ends, with its audit record, on every replica. */
  private async revokeReusedFamily(sessionId: string, userId: string, spentAt: Date | null): Promise<void> {
    await this.prisma.$transaction(async (tx) => {
      await this.sessions.revokeSessions(tx, { ids: [sessionId] }, 'refresh_reuse');
      await this.audit.record(tx, {
        action: 'session.refresh_reuse_detected',
        actor: { principalId: userId, principalType: 'user' },
        target: { type: 'session', id: sessionId },
        changes: { spent_at: spentAt?.toISOString() ?? null },
      });
    });
    this.metrics.refreshReuseDetected.inc();
    await this.announceRevoked([sessionId]);
  }

  /**
   * A retry within the grace window gets the winner's response: the rotation itself sealed only
   * the successor refresh token (the access token is signed after it, from the row it returns),
   * and the winner writes its whole response back right after answering (storeReplayLater). A
   * retry that beats that write waits for it briefly; past REPLAY_WAIT_MS it gets the same
   * refresh token with a freshly signed access token for the same session.
   */
  private async replayed(
    tokenId: string,
    sealed: string,
    user: Parameters<typeof userView>[0],
    session: Pick<Session, 'id' | 'amr' | 'expiresAt'>,
  ): Promise<TokenResponse> {
    const waitUntil = Date.now() + REPLAY_WAIT_MS;
    for (let current = sealed; ;) {
      const opened = this.replayBox.open(current);
      // a whole response is JSON; a bare refresh token is base64url
      if (opened.startsWith('{')) return JSON.parse(opened) as TokenResponse;
      if (Date.now() >= waitUntil) return this.tokenResponse(user, session, opened);
      await (this.replayFlush ?? delay(REPLAY_POLL_MS));
      current = (await this.sessions.successorSealed(this.prisma, tokenId)) ?? current;
    }
  }

  /** Queues the winner's sealed response for the write-back; one statement per batch, one batch at a time. */
  private storeReplayLater(item: { id: string; successorId: string; sealed: string }): void {
    this.pendingReplays.push(item);
    this.replayFlush ??= this.flushReplays();
  }

  private async flushReplays(): Promise<void> {
    try {
      while (this.pendingReplays.length > 0) {
        const batch = this.pendingReplays.splice(0, REPLAY_BATCH);
        try {
          await this.sessions.storeReplayResponses(this.prisma, batch);
        } catch (error) {
          // a retry of these rotations then gets a fresh access token with the same refresh token
          this.logger.warn({ err: error, tokens: batch.length }, 'refresh replay responses not stored');
        }
      }
    } finally {
      this.replayFlush = undefined;
    }
  }

  /**
   * When the session last saw a primary authentication and whether a second factor was part of
   * it (CONTRACT §4 "Recent authentication"); null for a revoked, expired or unknown session.
   */
  async authenticationOf(sessionId: string): Promise<{ authenticatedAt: Date; secondFactor: boolean } | null> {
    const session = await this.sessions.findSession(this.prisma, sessionId);
    if (session === null || session.revokedAt !== null || session.expiresAt.getTime() <= Date.now()) return null;
    return { authenticatedAt: session.authenticatedAt, secondFactor: session.amr.includes(SECOND_FACTOR_AMR) };
  }

  /** `POST /v1/auth/reauth` succeeded: the session counts as freshly authenticated (with a second factor when one was used). */
  markReauthenticated(db: Db, sessionId: string, withSecondFactor: boolean): Promise<boolean> {
    return this.sessions.markAuthenticated(db, sessionId, withSecondFactor ? SECOND_FACTOR_AMR : undefined);
  }

  /** Revokes the user's other sessions inside the caller's transaction (a changed second factor); announce after commit. */
  revokeOthersIn(db: Db, userId: string, keepSessionId: string | undefined, reason: string): Promise<string[]> {
    return this.sessions.revokeOthers(db, userId, keepSessionId, reason);
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

  private refreshExpiry(session: Pick<Session, 'expiresAt'>): Date {
    return new Date(Math.min(Date.now() + this.config.REFRESH_TOKEN_TTL * 1000, session.expiresAt.getTime()));
  }

  private async tokenResponse(
    user: Parameters<typeof userView>[0],
    session: Pick<Session, 'id' | 'amr' | 'expiresAt'>,
    refreshToken: string,
  ): Promise<TokenResponse> {
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
