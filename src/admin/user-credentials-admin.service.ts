import { Injectable } from '@nestjs/common';
import { AccountNotices } from '../identity/account-notices.service';
import { AuditService } from '../audit/audit.service';
import { AbuseLimiter } from '../authn/abuse-limiter.service';
import { ExternalIdentityRepository } from '../authn/oidc/external-identity.repository';
import type { AdminScope } from '../authz/admin-scope';
import { PrincipalVisibility } from '../authz/principal-visibility';
import { AppError } from '../common/app-error';
import { PrismaService } from '../database/prisma.service';
import { PasswordHasher } from '../identity/password-hasher';
import { assertPasswordAllowed } from '../identity/password-policy';
import { UserRepository } from '../identity/user.repository';
import { SessionService } from '../session/session.service';

/** An admin's hand on a user's ways to sign in: the password and the sign-in lockout. Each change is audited. */
@Injectable()
export class UserCredentialsAdminService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly notices: AccountNotices,
    private readonly audit: AuditService,
    private readonly visibility: PrincipalVisibility,
    private readonly hasher: PasswordHasher,
    private readonly sessions: SessionService,
    private readonly limiter: AbuseLimiter,
    private readonly users: UserRepository,
    private readonly identities: ExternalIdentityRepository,
  ) {}

  async unlock(scope: AdminScope, id: string): Promise<void> {
    const user = await this.visibility.requireVisibleUser(this.prisma, scope, id);
    await this.prisma.$transaction(async (tx) => {
      const lifted = await this.limiter.unlockIn(tx, user);
      await this.audit.record(tx, {
        action: 'iam.user.unlock',
        target: { type: 'user', id },
        tenantId: scope.tenantId ?? null,
        changes: { counters_cleared: lifted },
      });
    });
  }

  /** Setting a password signs the account out everywhere. */
  async setPassword(scope: AdminScope, id: string, password: string): Promise<void> {
    await this.visibility.requireOwnedByTenant(this.prisma, scope, id);
    const user = await this.users.findByIdOrThrow(this.prisma, id);
    assertPasswordAllowed(password, user.email, 'password', user.displayName);
    const hash = await this.hasher.hash(password);
    const revoked = await this.prisma.$transaction(async (tx) => {
      await this.users.setPasswordHash(tx, id, hash);
      const sessionIds = await this.sessions.revokeIn(tx, { userId: id }, 'password_set_by_admin');
      await this.audit.record(tx, {
        action: 'iam.user.password_set',
        target: { type: 'user', id },
        tenantId: scope.tenantId ?? null,
        changes: { sessions_revoked: sessionIds.length },
      });
      return sessionIds;
    });
    await this.sessions.announceRevoked(revoked);
    this.notices.send(user.email, 'password_set_by_admin');
  }

  /** Refused when the password is the last way to sign in. */
  async removePassword(scope: AdminScope, id: string): Promise<void> {
    await this.visibility.requireOwnedByTenant(this.prisma, scope, id);
    await this.prisma.$transaction(async (tx) => {
      if (!(await this.users.hasPassword(tx, id))) throw new AppError('not_found', { detail: 'This user has no password.' });
      if ((await this.identities.countForUser(tx, id)) === 0) {
        throw new AppError('conflict', { detail: 'The password is the last sign-in method of this user.' });
      }
      await this.users.deletePassword(tx, id);
      await this.audit.record(tx, { action: 'iam.user.password_remove', target: { type: 'user', id }, tenantId: scope.tenantId ?? null });
    });
  }
}
