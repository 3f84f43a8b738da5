import { Injectable } from '@nestjs/common';
import { AuditService } from '../../audit/audit.service';
import { AppError } from '../../common/app-error';
import { PrismaService } from '../../database/prisma.service';
import type { Db } from '../../database/transaction';
import type { User } from '../../generated/prisma/client';
import { StepUpService } from '../../authz/step-up.service';
import { AccountNotices } from '../../identity/account-notices.service';
import { UserRepository } from '../../identity/user.repository';
import { SessionService } from '../../session/session.service';
import type { Principal } from '../../session/principal';
import { hashRecoveryCode, newRecoveryCodes } from './recovery-codes';
import { SecondFactorService, type SecondFactor } from './second-factor.service';
import { matchTotp, newTotpSecret, otpauthUrl } from './totp';
import { TotpCredentialRepository } from './totp-credential.repository';
import { RecoveryCodeRepository } from './recovery-code.repository';

const OTPAUTH_ISSUER = 'Gatehouse';

/** A signed-in user's own TOTP: enroll (pending), confirm, disable, new recovery codes. */
@Injectable()
export class TotpService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly users: UserRepository,
    private readonly credentials: TotpCredentialRepository,
    private readonly recoveryCodes: RecoveryCodeRepository,
    private readonly factors: SecondFactorService,
    private readonly audit: AuditService,
    private readonly sessions: SessionService,
    private readonly stepUp: StepUpService,
    private readonly notices: AccountNotices,
  ) {}

  /** The secret is shown here once; afterwards it exists only sealed in the database. */
  async enroll(principal: Principal): Promise<{ secret: string; otpauth_url: string }> {
    const user = await this.userOf(principal);
    await this.stepUp.requireRecentSelf(principal, 'totp enroll');
    const secret = newTotpSecret();
    if (!(await this.credentials.savePending(this.prisma, user.id, this.factors.sealSecret(secret)))) {
      throw new AppError('conflict', { detail: 'TOTP is already enabled; disable it before enrolling again.' });
    }
    return { secret, otpauth_url: otpauthUrl(OTPAUTH_ISSUER, user.email, secret) };
  }

  async confirm(principal: Principal, code: string): Promise<{ recovery_codes: string[] }> {
    const user = await this.userOf(principal);
    const pending = await this.credentials.find(this.prisma, user.id);
    if (pending === null || pending.confirmedAt !== null) {
      throw new AppError('conflict', { detail: 'There is no pending TOTP enrollment to confirm.' });
    }
    const attempt = await this.factors.reserveAttempt(user);
    const step = await matchTotp({ secret: this.factors.openSecret(pending.secretSealed), code });
    if (step === null) return this.factors.refuse(user, 'totp', 'totp_confirm', attempt);
    const codes = newRecoveryCodes();
    const confirmed = await this.prisma.$transaction(async (tx) => {
      if (!(await this.credentials.confirm(tx, user.id, pending.secretSealed, step))) return null;
      await this.recoveryCodes.replaceAll(tx, user.id, codes.map(hashRecoveryCode));
      // a changed second factor ends every other session (CONTRACT §4)
      const revoked = await this.sessions.revokeOthersIn(tx, user.id, principal.sessionId, 'second_factor_changed');
      await this.audit.record(tx, {
        action: 'mfa.totp_enabled',
        actor: { principalId: user.id, principalType: 'user' },
        target: { type: 'user', id: user.id },
        changes: { recovery_codes_issued: codes.length, other_sessions_revoked: revoked.length },
      });
      return revoked;
    });
    if (confirmed === null) throw new AppError('conflict', { detail: 'The enrollment changed meanwhile; enroll again.' });
    await this.factors.clearAttempts(user);
    await this.sessions.announceRevoked(confirmed);
    this.notices.send(user.email, 'totp_enrolled');
    return { recovery_codes: codes };
  }

  async disable(principal: Principal, factor: SecondFactor): Promise<void> {
    const user = await this.enabledUserOf(principal);
    await this.stepUp.requireRecentSelf(principal, 'totp disable');
    const revoked = await this.factors.withFactor(user, factor, 'totp_disable', async (tx) => {
      await this.credentials.delete(tx, user.id);
      await this.recoveryCodes.deleteAll(tx, user.id);
      const others = await this.sessions.revokeOthersIn(tx, user.id, principal.sessionId, 'second_factor_changed');
      await this.audit.record(tx, {
        action: 'mfa.totp_disabled',
        actor: { principalId: user.id, principalType: 'user' },
        target: { type: 'user', id: user.id },
        changes: { verified_with: factor.kind, other_sessions_revoked: others.length },
      });
      return others;
    });
    await this.sessions.announceRevoked(revoked);
    this.notices.send(user.email, 'totp_disabled');
    if (factor.kind === 'recovery_code') this.notices.send(user.email, 'recovery_code_used');
  }

  async regenerateRecoveryCodes(principal: Principal, code: string): Promise<{ recovery_codes: string[] }> {
    const user = await this.enabledUserOf(principal);
    await this.stepUp.requireRecentSelf(principal, 'recovery codes regenerate');
    const codes = newRecoveryCodes();
    await this.factors.withFactor(user, { kind: 'totp', code }, 'recovery_codes_regenerate', async (tx: Db) => {
      await this.recoveryCodes.replaceAll(tx, user.id, codes.map(hashRecoveryCode));
      await this.audit.record(tx, {
        action: 'mfa.recovery_codes_regenerated',
        actor: { principalId: user.id, principalType: 'user' },
        target: { type: 'user', id: user.id },
        changes: { recovery_codes_issued: codes.length },
      });
    });
    this.notices.send(user.email, 'recovery_codes_regenerated');
    return { recovery_codes: codes };
  }

  private async userOf(principal: Principal): Promise<User> {
    const user = principal.type === 'user' ? await this.users.findById(this.prisma, principal.id) : null;
    if (user === null) throw new AppError('not_found', { detail: 'No user profile for this principal.' });
    return user;
  }

  private async enabledUserOf(principal: Principal): Promise<User> {
    const user = await this.userOf(principal);
    if (!(await this.credentials.isConfirmed(this.prisma, user.id))) {
      throw new AppError('conflict', { detail: 'TOTP is not enabled.' });
    }
    return user;
  }
}
