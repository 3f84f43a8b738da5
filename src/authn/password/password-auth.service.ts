import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { AuditService } from '../../audit/audit.service';
import { AppError } from '../../common/app-error';
import { PrismaService } from '../../database/prisma.service';
import { isUniqueViolation } from '../../database/transaction';
import { AccountNotices } from '../../identity/account-notices.service';
import { EmailTokenRepository } from '../../identity/email-token.repository';
import { AccountMails, RESET_PASSWORD_TTL_S, VERIFY_EMAIL_TTL_S } from '../../identity/account-mails.service';
import { PasswordHasher } from '../../identity/password-hasher';
import { assertPasswordAllowed } from '../../identity/password-policy';
import { UserRepository } from '../../identity/user.repository';
import { LOGGER } from '../../observability/logger';
import { MetricsService } from '../../observability/metrics.service';
import { SessionService, type ClientInfo } from '../../session/session.service';
import type { TokenResponse } from '../../session/token-response';
import { AbuseLimiter } from '../abuse-limiter.service';
import { MfaChallengeService, type MfaPendingResponse } from '../mfa/mfa-challenge.service';

/** How long `forgot` requests gather before their per-account work runs. */
const RESET_LINK_BATCH_MS = 200;

/** Sign-up, sign-in with a password, email verification, forgot and reset. */
@Injectable()
export class PasswordAuthService {
  private readonly pendingResetLinks: string[] = [];
  private resetLinkTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly prisma: PrismaService,
    private readonly users: UserRepository,
    private readonly emailTokens: EmailTokenRepository,
    private readonly hasher: PasswordHasher,
    private readonly sessions: SessionService,
    private readonly limiter: AbuseLimiter,
    private readonly audit: AuditService,
    private readonly mails: AccountMails,
    private readonly metrics: MetricsService,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly mfa: MfaChallengeService,
    private readonly notices: AccountNotices,
  ) {}

  async signup(input: { email: string; password: string; displayName?: string }, client: ClientInfo): Promise<TokenResponse> {
    assertPasswordAllowed(input.password, input.email, 'password', input.displayName);
    if ((await this.users.findByEmailWithPassword(this.prisma, input.email)) !== null) throw new AppError('email_taken');
    const passwordHash = await this.hasher.hash(input.password);
    let verifyToken = '';
    let response: TokenResponse;
    try {
      response = await this.prisma.$transaction(async (tx) => {
        const user = await this.users.createWithPassword(tx, { email: input.email, displayName: input.displayName, passwordHash });
        verifyToken = await this.emailTokens.issue(tx, user.id, 'verify_email', VERIFY_EMAIL_TTL_S);
        const tokens = await this.sessions.start(tx, user, ['pwd'], client);
        await this.audit.record(tx, {
          action: 'user.signup',
          actor: { principalId: user.id, principalType: 'user' },
          target: { type: 'user', id: user.id },
          changes: { email_verified: false },
        });
        return tokens;
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw new AppError('email_taken');
      throw error;
    }
    this.mails.verifyEmail(input.email, verifyToken);
    return response;
  }

  /**
   * One endpoint for every link that proves an address: a sign-up's verification, or an email
   * change, which moves the account to the new address now and tells the old one.
   */
  async verifyEmail(token: string): Promise<void> {
    let outcome: { previousEmail?: string } | null;
    try {
      outcome = await this.prisma.$transaction(async (tx) => {
        const spent = await this.emailTokens.consumeAny(tx, token, ['verify_email', 'change_email']);
        if (spent === null) return null;
        const actor = { principalId: spent.userId, principalType: 'user' as const };
        if (spent.purpose === 'change_email' && spent.newEmail !== null) {
          const before = await this.users.findByIdOrThrow(tx, spent.userId);
          await this.users.changeVerifiedEmail(tx, spent.userId, spent.newEmail);
          await this.audit.record(tx, { action: 'user.email_changed', actor, target: { type: 'user', id: spent.userId } });
          return { previousEmail: before.email };
        }
        await this.users.markEmailVerified(tx, spent.userId);
        await this.audit.record(tx, { action: 'user.email_verified', actor, target: { type: 'user', id: spent.userId } });
        return {};
      });
    } catch (error) {
      // another account took the address after the change was asked for; the token stays unspent
      if (isUniqueViolation(error)) throw new AppError('email_taken', { logReason: 'email change target taken meanwhile' });
      throw error;
    }
    if (outcome === null) throw new AppError('invalid_grant', { logReason: 'verification token unknown, used or expired' });
    if (outcome.previousEmail !== undefined) this.mails.emailChanged(outcome.previousEmail);
  }

  /**
   * Every attempt is counted against the account before the password is looked at, so
   * parallel guesses beyond the limit never reach argon2; a success clears the count.
   */
  async signin(input: { email: string; password: string }, client: ClientInfo): Promise<TokenResponse | MfaPendingResponse> {
    // the hasher's bound first, in memory: a burst beyond it is 503 at once instead of queueing
    // in the database pool (nothing is counted or hashed for it)
    const release = this.hasher.reserve();
    try {
      return await this.signinReserved(input, client);
    } finally {
      release();
    }
  }

  private async signinReserved(
    input: { email: string; password: string },
    client: ClientInfo,
  ): Promise<TokenResponse | MfaPendingResponse> {
    const { attempt, user } = await this.limiter.consumeSigninAttempt(client.ip ?? 'unknown', `signin:${input.email}`, input.email);
    const passwordHash = user?.passwordHash ?? undefined;
    // hasher overloaded (503): the attempt was never made, so it does not count against the account
    const valid = await this.limiter.givenBackIfUnavailable(attempt, () =>
      passwordHash === undefined ? this.hasher.verifyDummy(input.password) : this.hasher.verify(passwordHash, input.password),
    );
    if (user === null || passwordHash === undefined || !valid) {
      // A refused attempt is per request: counted in gatehouse_auth_failures_total and logged with
      // its reason, not audited (anyone can send them, and the trail is append-only). Only the
      // failure that enters a locked state writes a record (`auth.account_locked`).
      this.metrics.authFailures.inc({ reason: 'invalid_credentials' });
      await this.limiter.recordFailure(attempt, user?.id ?? null);
      const reason = user === null ? 'unknown account' : passwordHash === undefined ? 'account without password' : 'wrong password';
      throw new AppError('invalid_credentials', { logReason: `signin: ${reason}` });
    }
    if (user.status !== 'active') {
      this.metrics.authFailures.inc({ reason: 'account_disabled' });
      throw new AppError('account_disabled');
    }
    // With MFA the count is cleared only once the second factor passes: clearing it here would
    // let whoever holds the password buy fresh MFA guesses by signing in again.
    const mfaPending = await this.mfa.challengeIfEnrolled(user, ['pwd']);
    if (this.hasher.needsRehash(passwordHash)) {
      await this.users.replaceHashIfUnchanged(this.prisma, user.id, passwordHash, await this.hasher.hash(input.password));
    }
    if (mfaPending !== null) return mfaPending;
    // the success clears the account's count in the same statement as the session and its record
    const clearCounterKeys = this.limiter.accountCounterKeys(`signin:${input.email}`);
    return this.sessions.startSignedIn({ user, amr: ['pwd'], client, clearCounterKeys });
  }

  /** Always the same answer; a mail goes out only when the account exists. */
  async forgot(email: string): Promise<void> {
    await this.limiter.consumeAccount(`forgot:${email}`);
    // Answer before any per-account work, so the response time does not tell whether the
    // account exists. The lookup, token and mail run later, in batches on a timer: work done
    // right after a known address's answer would slow whichever request comes next, which an
    // attacker alternating addresses could measure. A crash loses requests the user can repeat.
    this.pendingResetLinks.push(email);
    if (this.resetLinkTimer === undefined) {
      this.resetLinkTimer = setTimeout(() => void this.drainResetLinks(), RESET_LINK_BATCH_MS);
      this.resetLinkTimer.unref();
    }
  }

  private async drainResetLinks(): Promise<void> {
    const emails = this.pendingResetLinks.splice(0);
    for (const email of emails) {
      try {
        await this.sendResetLink(email);
      } catch (error) {
        this.logger.error({ err: error }, 'password reset request failed');
      }
    }
    this.resetLinkTimer =
      this.pendingResetLinks.length === 0 ? undefined : setTimeout(() => void this.drainResetLinks(), RESET_LINK_BATCH_MS);
    this.resetLinkTimer?.unref();
  }

  private async sendResetLink(email: string): Promise<void> {
    const user = await this.users.findByEmailWithPassword(this.prisma, email);
    if (user === null || user.status !== 'active') return;
    const token = await this.prisma.$transaction(async (tx) => {
      const issued = await this.emailTokens.issue(tx, user.id, 'reset_password', RESET_PASSWORD_TTL_S);
      await this.audit.record(tx, {
        action: 'auth.password_reset_requested',
        actor: { principalId: null, principalType: null },
        target: { type: 'user', id: user.id },
      });
      return issued;
    });
    this.mails.resetPassword(user.email, token);
  }

  /** Sets the password, spends the token and revokes every session of the user, in one transaction. */
  async reset(input: { token: string; newPassword: string }): Promise<void> {
    const preview = await this.emailTokens.findUsable(this.prisma, input.token, 'reset_password');
    if (preview === null) {
      throw new AppError('invalid_grant', { logReason: 'reset token unknown, used or expired' });
    }
    assertPasswordAllowed(input.newPassword, preview.user.email, 'new_password', preview.user.displayName);
    const hash = await this.hasher.hash(input.newPassword);
    const revoked = await this.prisma.$transaction(async (tx) => {
      const userId = await this.emailTokens.consume(tx, input.token, 'reset_password');
      if (userId === null) return null;
      await this.users.setPasswordHash(tx, userId, hash);
      const sessionIds = await this.sessions.revokeIn(tx, { userId }, 'password_reset');
      // a reset unlocks: the sign-in counters from every address and the second-factor lock
      const unlocked = (await this.limiter.clearSigninLocksIn(tx, { id: userId, email: preview.user.email })) > 0;
      await this.audit.record(tx, {
        action: 'auth.password_reset',
        actor: { principalId: userId, principalType: 'user' },
        target: { type: 'user', id: userId },
        changes: { sessions_revoked: sessionIds.length, lockouts_cleared: unlocked },
      });
      return sessionIds;
    });
    if (revoked === null) throw new AppError('invalid_grant', { logReason: 'reset token spent concurrently' });
    await this.sessions.announceRevoked(revoked);
    this.notices.send(preview.user.email, 'password_reset');
    this.logger.info({ user_id: preview.userId, sessions_revoked: revoked.length }, 'password reset');
  }
}
