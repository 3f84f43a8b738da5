import { Injectable } from '@nestjs/common';
import { AuditService } from '../../audit/audit.service';
import { AssignmentRepository, PLATFORM_ADMIN_ROLE_ID } from '../../authz/assignment.repository';
import { StepUpService } from '../../authz/step-up.service';
import { AppError } from '../../common/app-error';
import { PrismaService } from '../../database/prisma.service';
import type { Db } from '../../database/transaction';
import type { User } from '../../generated/prisma/client';
import { ClusterEventBus } from '../../messaging/cluster-event-bus';
import { AccountMails } from '../../identity/account-mails.service';
import { DeletedPrincipalRepository } from '../../identity/deleted-principal.repository';
import { UserRepository } from '../../identity/user.repository';
import type { Principal } from '../../session/principal';
import { SessionService } from '../../session/session.service';
import { AbuseLimiter } from '../abuse-limiter.service';
import { SecondFactorService } from '../mfa/second-factor.service';
import { TotpCredentialRepository } from '../mfa/totp-credential.repository';
import { PasswordProof } from './password-proof';

export type DeletionProof = { password?: string; code?: string };

/**
 * Deletes the caller's own account (CONTRACT §12): proven with the password, or for an account
 * without one with a TOTP code entered now, and for an account with neither (Google only) with a
 * recent authentication (SELF_REAUTH_MAX_AGE, as for second-factor changes). The user row goes with everything hanging off it
 * (credentials, identities, sessions, MFA, one-time tokens), then its assignments and limiter
 * counters (keyed by email); the audit record names the id only, so the address is free again.
 */
@Injectable()
export class AccountDeletionService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly users: UserRepository,
    private readonly proof: PasswordProof,
    private readonly secondFactor: SecondFactorService,
    private readonly totp: TotpCredentialRepository,
    private readonly sessions: SessionService,
    private readonly assignments: AssignmentRepository,
    private readonly deletedPrincipals: DeletedPrincipalRepository,
    private readonly limiter: AbuseLimiter,
    private readonly audit: AuditService,
    private readonly events: ClusterEventBus,
    private readonly mails: AccountMails,
    private readonly stepUp: StepUpService,
  ) {}

  async deleteOwn(principal: Principal, proof: DeletionProof): Promise<void> {
    const user = await this.proof.requireUser(principal);
    let revoked: string[];
    if (await this.proof.hasPassword(user)) {
      if (proof.password === undefined) throw missing('password', 'Confirm with your password.');
      await this.proof.check(user, proof.password, 'account_delete');
      revoked = await this.prisma.$transaction((tx) => this.deleteIn(tx, user, 'password'));
    } else if (await this.totp.isConfirmed(this.prisma, user.id)) {
      if (proof.code === undefined) throw missing('code', 'Confirm with a code from your authenticator app.');
      revoked = await this.secondFactor.withFactor(user, { kind: 'totp', code: proof.code }, 'account_delete', (tx) =>
        this.deleteIn(tx, user, 'totp'),
      );
    } else {
      // An account that signs in with Google only has nothing to type here: its proof is a recent
      // authentication of this session (a fresh Google sign-in, or a second-factor step), the same
      // rule as for second-factor changes (CONTRACT §4), else 403 reauth_required.
      await this.stepUp.requireRecentSelf(principal, 'account delete');
      revoked = await this.prisma.$transaction((tx) => this.deleteIn(tx, user, 'recent_authentication'));
    }
    await this.sessions.announceRevoked(revoked);
    await this.events.publish('principal.status_changed', { principalId: user.id, active: false });
    await this.events.publish('authz.changed', { principalIds: [user.id] });
    this.mails.accountDeleted(user.email);
  }

  private async deleteIn(tx: Db, user: User, provenBy: string): Promise<string[]> {
    await this.users.lock(tx, user.id);
    const sources = await this.assignments.grantSourcesOf(tx, user.id);
    const isPlatformAdmin = sources.some((source) => source.roleId === PLATFORM_ADMIN_ROLE_ID && source.tenantId === null);
    if (isPlatformAdmin && (await this.assignments.countPlatformAdmins(tx)) <= 1) {
      throw new AppError('conflict', {
        detail: 'The last platform admin cannot delete their account; make someone else platform admin first.',
      });
    }
    const sessionIds = await this.sessions.revokeIn(tx, { userId: user.id }, 'account_deleted');
    await this.assignments.deleteAllOf(tx, user.id);
    await this.limiter.unlockIn(tx, user);
    await this.deletedPrincipals.remember(tx, user.id);
    await this.users.delete(tx, user.id);
    await this.audit.record(tx, {
      action: 'user.self_deleted',
      actor: { principalId: user.id, principalType: 'user' },
      target: { type: 'user', id: user.id },
      changes: { proven_by: provenBy, sessions_revoked: sessionIds.length },
    });
    return sessionIds;
  }
}

function missing(field: string, detail: string): AppError {
  return new AppError('validation_failed', { detail, errors: [{ path: field, message: 'is required for this account' }] });
}
