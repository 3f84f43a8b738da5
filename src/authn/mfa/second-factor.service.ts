import { Inject, Injectable } from '@nestjs/common';
import { AuditService } from '../../audit/audit.service';
import { AppError } from '../../common/app-error';
import { SecretBox } from '../../common/secret-box';
import { APP_CONFIG, type AppConfig } from '../../config/config';
import { PrismaService } from '../../database/prisma.service';
import type { Db } from '../../database/transaction';
import { MetricsService } from '../../observability/metrics.service';
import { AccountNotices } from '../../identity/account-notices.service';
import { AbuseLimiter, type AccountAttempt } from '../abuse-limiter.service';
import { MfaChallengeRepository } from './mfa-challenge.repository';
import { hashRecoveryCode } from './recovery-codes';
import { matchTotp } from './totp';
import { TotpCredentialRepository } from './totp-credential.repository';
import { RecoveryCodeRepository } from './recovery-code.repository';

export type SecondFactor = { kind: 'totp'; code: string } | { kind: 'recovery_code'; code: string };

export interface FactorOwner {
  id: string;
  email: string;
}

/** The purpose under which TOTP secrets are sealed with MASTER_KEY. */
export const TOTP_SECRET_PURPOSE = 'totp-secret';

/**
 * Checks and spends second factors. Every check first reserves an attempt on the account's
 * sign-in counters (the ones password sign-in uses: per client IP and from every address), so
 * wrong codes and wrong passwords share AUTH_ACCOUNT_FAILURE_LIMIT; only a success clears them.
 * A check against a confirmed TOTP also counts toward MFA_FAILURE_LIMIT, which no window resets:
 * the failure that reaches it spends every open `mfa_token`, mails the owner and is audited as
 * `auth.mfa_locked`; from then on TOTP codes are refused unchecked until a recovery code is
 * accepted, the password is reset or an admin unlocks the account.
 */
@Injectable()
export class SecondFactorService {
  private readonly secrets: SecretBox;
  private readonly mfaFailureLimit: number;

  constructor(
    private readonly prisma: PrismaService,
    private readonly totp: TotpCredentialRepository,
    private readonly recoveryCodes: RecoveryCodeRepository,
    private readonly challenges: MfaChallengeRepository,
    private readonly limiter: AbuseLimiter,
    private readonly audit: AuditService,
    private readonly metrics: MetricsService,
    private readonly notices: AccountNotices,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.secrets = new SecretBox(config.MASTER_KEY, TOTP_SECRET_PURPOSE, config.MASTER_KEY_PREVIOUS);
    this.mfaFailureLimit = config.MFA_FAILURE_LIMIT;
  }

  sealSecret(secret: string): string {
    return this.secrets.seal(secret);
  }

  openSecret(sealed: string): string {
    return this.secrets.open(sealed);
  }

  /** Throws 429 once the account has used up its attempts (from this client IP or from everywhere). */
  async reserveAttempt(owner: FactorOwner): Promise<AccountAttempt> {
    return this.limiter.reserveAttempt(`signin:${owner.email}`);
  }

  /** After a success: the account's sign-in counters, and with `secondFactor` the MFA failures too. */
  async clearAttempts(owner: FactorOwner, secondFactor = false): Promise<void> {
    await this.limiter.resetAccount(`signin:${owner.email}`);
    if (secondFactor) await this.totp.clearFailures(this.prisma, owner.id);
  }

  /** Whether the user's TOTP is locked by MFA_FAILURE_LIMIT. */
  async mfaLocked(userId: string): Promise<boolean> {
    return ((await this.totp.find(this.prisma, userId))?.failedAttempts ?? 0) >= this.mfaFailureLimit;
  }

  /**
   * Counts (gatehouse_auth_failures_total), logs and throws 401 mfa_invalid; a wrong code is not
   * audited, only entering a locked state is. Never records the code itself. `attempt` and
   * `mfaFailures` are where the reservation left the counters: the failure that reaches a limit
   * enters the locked state, audited once (and, for the MFA limit, the owner mailed once).
   */
  async refuse(
    owner: FactorOwner,
    method: SecondFactor['kind'],
    context: string,
    attempt?: AccountAttempt,
    mfaFailures: number | null = null,
  ): Promise<never> {
    this.metrics.authFailures.inc({ reason: 'mfa_invalid' });
    const entersMfaLock = mfaFailures === this.mfaFailureLimit;
    const entersAccountLock = attempt !== undefined && this.limiter.locksWith(attempt);
    if (!entersMfaLock) {
      // only the account's lock is entered: its one record is one statement, no transaction
      if (entersAccountLock) await this.limiter.recordFailure(attempt, owner.id);
      throw new AppError('mfa_invalid', { logReason: `${context}: ${method} refused` });
    }
    await this.prisma.$transaction(async (tx) => {
      if (attempt !== undefined) await this.limiter.recordFailure(attempt, owner.id, tx);
      const spent = await this.challenges.spendAllOpen(tx, owner.id);
      await this.audit.record(tx, {
        action: 'auth.mfa_locked',
        actor: { principalId: null, principalType: null },
        target: { type: 'user', id: owner.id },
        changes: { failed_attempts: mfaFailures, mfa_tokens_spent: spent, context },
      });
    });
    this.notices.send(owner.email, 'mfa_locked');
    throw new AppError('mfa_invalid', { logReason: `${context}: ${method} refused` });
  }

  /**
   * Spends the factor inside `tx`: a TOTP code only for a time step later than the last one
   * accepted (compare-and-set, so a replay fails on every replica), a recovery code once.
   */
  async consume(tx: Db, userId: string, factor: SecondFactor): Promise<boolean> {
    if (factor.kind === 'recovery_code') return this.recoveryCodes.consume(tx, userId, hashRecoveryCode(factor.code));
    const credential = await this.totp.find(tx, userId);
    if (credential === null || credential.confirmedAt === null) return false;
    const step = await matchTotp({
      secret: this.openSecret(credential.secretSealed),
      code: factor.code,
      afterTimeStep: credential.lastUsedStep,
    });
    if (step === null) return false;
    return this.totp.acceptStep(tx, userId, step);
  }

  /**
   * Reserves an attempt, then in one transaction spends the factor and runs `work`; a wrong
   * factor changes nothing but the counters and the audit trail. Returns what `work` returned.
   * While the TOTP is locked (MFA_FAILURE_LIMIT reached), a TOTP code is refused unchecked, so
   * guessing gains nothing; a recovery code (far beyond guessing) is still checked.
   */
  async withFactor<T>(owner: FactorOwner, factor: SecondFactor, context: string, work: (tx: Db) => Promise<T>): Promise<T> {
    const attempt = await this.reserveAttempt(owner);
    const mfaFailures = await this.totp.countAttempt(this.prisma, owner.id);
    if (factor.kind === 'totp' && mfaFailures !== null && mfaFailures > this.mfaFailureLimit) {
      this.metrics.authFailures.inc({ reason: 'mfa_invalid' });
      await this.limiter.recordFailure(attempt, owner.id);
      throw new AppError('mfa_invalid', { logReason: `${context}: second factor locked (MFA_FAILURE_LIMIT), code not checked` });
    }
    const outcome = await this.prisma.$transaction(async (tx) => {
      if (!(await this.consume(tx, owner.id, factor))) return { accepted: false as const };
      return { accepted: true as const, value: await work(tx) };
    });
    if (!outcome.accepted) return this.refuse(owner, factor.kind, context, attempt, mfaFailures);
    await this.clearAttempts(owner, true);
    return outcome.value;
  }
}
