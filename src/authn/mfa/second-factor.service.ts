import { Inject, Injectable } from '@nestjs/common';
import { AuditService } from '../../audit/audit.service';
import { AppError } from '../../common/app-error';
import { SecretBox } from '../../common/secret-box';
import { APP_CONFIG, type AppConfig } from '../../config/config';
import { PrismaService } from '../../database/prisma.service';
import type { Db } from '../../database/transaction';
import { MetricsService } from '../../observability/metrics.service';
import { AbuseLimiter } from '../abuse-limiter.service';
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
 * sign-in counter (the one password sign-in uses), so wrong codes and wrong passwords share
 * one AUTH_ACCOUNT_FAILURE_LIMIT; only a success clears it.
 */
@Injectable()
export class SecondFactorService {
  private readonly secrets: SecretBox;

  constructor(
    private readonly prisma: PrismaService,
    private readonly totp: TotpCredentialRepository,
    private readonly recoveryCodes: RecoveryCodeRepository,
    private readonly limiter: AbuseLimiter,
    private readonly audit: AuditService,
    private readonly metrics: MetricsService,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.secrets = new SecretBox(config.MASTER_KEY, TOTP_SECRET_PURPOSE, config.MASTER_KEY_PREVIOUS);
  }

  sealSecret(secret: string): string {
    return this.secrets.seal(secret);
  }

  openSecret(sealed: string): string {
    return this.secrets.open(sealed);
  }

  /** Throws 429 once the account has used up its attempts. */
  async reserveAttempt(owner: FactorOwner): Promise<void> {
    await this.limiter.consumeAccount(`signin:${owner.email}`);
  }

  async clearAttempts(owner: FactorOwner): Promise<void> {
    await this.limiter.resetAccount(`signin:${owner.email}`);
  }

  /** Counts, audits and throws 401 mfa_invalid; never records the code itself. */
  async refuse(owner: FactorOwner, method: SecondFactor['kind'], context: string): Promise<never> {
    this.metrics.authFailures.inc({ reason: 'mfa_invalid' });
    await this.prisma.$transaction((tx) =>
      this.audit.record(tx, {
        action: 'auth.mfa_failed',
        actor: { principalId: owner.id, principalType: 'user' },
        target: { type: 'user', id: owner.id },
        changes: { method, context },
      }),
    );
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
   * factor changes nothing but the counter and the audit trail. Returns what `work` returned.
   */
  async withFactor<T>(owner: FactorOwner, factor: SecondFactor, context: string, work: (tx: Db) => Promise<T>): Promise<T> {
    await this.reserveAttempt(owner);
    const outcome = await this.prisma.$transaction(async (tx) => {
      if (!(await this.consume(tx, owner.id, factor))) return { accepted: false as const };
      return { accepted: true as const, value: await work(tx) };
    });
    if (!outcome.accepted) return this.refuse(owner, factor.kind, context);
    await this.clearAttempts(owner);
    return outcome.value;
  }
}
