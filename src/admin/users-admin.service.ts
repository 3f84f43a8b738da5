import { Injectable } from '@nestjs/common';
import { z } from 'zod';
import { AuditService } from '../audit/audit.service';
import { AbuseLimiter } from '../authn/abuse-limiter.service';
import { RecoveryCodeRepository } from '../authn/mfa/recovery-code.repository';
import { TotpCredentialRepository } from '../authn/mfa/totp-credential.repository';
import { ExternalIdentityRepository } from '../authn/oidc/external-identity.repository';
import { AssignmentRepository } from '../authz/assignment.repository';
import { AppError } from '../common/app-error';
import { decodeCursor, toPage, type Page } from '../common/pagination';
import { PrismaService } from '../database/prisma.service';
import { isUniqueViolation } from '../database/transaction';
import type { User } from '../generated/prisma/client';
import { DeletedPrincipalRepository } from '../identity/deleted-principal.repository';
import { PasswordHasher } from '../identity/password-hasher';
import { UserRepository } from '../identity/user.repository';
import { assertPasswordAllowed } from '../identity/password-policy';
import { ClusterEventBus } from '../messaging/cluster-event-bus';
import { SessionRepository } from '../session/session.repository';
import { SessionService } from '../session/session.service';
import { userSchema } from '../session/token-response';
import type { AdminScope } from '../authz/admin-scope';
import { PrincipalVisibility } from '../authz/principal-visibility';

const userStatus = z.enum(['active', 'disabled']);

export const adminUserSchema = userSchema
  .extend({ status: userStatus, created_at: z.string(), updated_at: z.string() })
  .meta({ id: 'AdminUser' });
export type AdminUserView = z.infer<typeof adminUserSchema>;

export const adminUserView = (user: User): AdminUserView => ({
  id: user.id,
  email: user.email,
  email_verified: user.emailVerifiedAt !== null,
  display_name: user.displayName,
  // the column is text; only enable/disable write it, with these two values
  status: user.status as z.infer<typeof userStatus>,
  created_at: user.createdAt.toISOString(),
  updated_at: user.updatedAt.toISOString(),
});

/** Account administration. Every change is audited in its transaction; effects reach every replica. */
@Injectable()
export class UsersAdminService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly audit: AuditService,
    private readonly events: ClusterEventBus,
    private readonly visibility: PrincipalVisibility,
    private readonly hasher: PasswordHasher,
    private readonly sessions: SessionService,
    private readonly limiter: AbuseLimiter,
    private readonly users: UserRepository,
    private readonly assignments: AssignmentRepository,
    private readonly deletedPrincipals: DeletedPrincipalRepository,
    private readonly sessionRows: SessionRepository,
    private readonly identities: ExternalIdentityRepository,
    private readonly totp: TotpCredentialRepository,
    private readonly recoveryCodes: RecoveryCodeRepository,
  ) {}

  async list(
    scope: AdminScope,
    filters: { email?: string; status?: string; tenantId?: string },
    limit: number,
    cursor?: string,
  ): Promise<Page<AdminUserView>> {
    const after = decodeCursor(cursor);
    const tenantId = scope.tenantId ?? filters.tenantId;
    if (scope.tenantId !== undefined && filters.tenantId !== undefined && filters.tenantId !== scope.tenantId) {
      return { items: [], next_cursor: null };
    }
    const ids = tenantId === undefined ? undefined : await this.assignments.userIdsInTenant(this.prisma, tenantId);
    const rows = await this.users.list(this.prisma, { after, email: filters.email, status: filters.status, ids }, limit + 1);
    return toPage(rows, limit, (row) => row.id, adminUserView);
  }

  async get(scope: AdminScope, id: string): Promise<AdminUserView> {
    return adminUserView(await this.visibleUser(scope, id));
  }

  /** In a tenant scope the new user is assigned tenant_member there, so its creator can see it. */
  async create(scope: AdminScope, input: { email: string; password?: string; displayName?: string }): Promise<AdminUserView> {
    if (input.password !== undefined) assertPasswordAllowed(input.password, input.email, 'password', input.displayName);
    const passwordHash = input.password === undefined ? null : await this.hasher.hash(input.password);
    try {
      const user = await this.prisma.$transaction(async (tx) => {
        const created = await this.users.createWithPassword(tx, { email: input.email, displayName: input.displayName, passwordHash });
        if (scope.tenantId !== undefined) {
          await this.assignments.create(tx, {
            principalId: created.id,
            principalType: 'user',
            tenantId: scope.tenantId,
            roleId: 'tenant_member',
          });
        }
        await this.audit.record(tx, {
          action: 'iam.user.create',
          target: { type: 'user', id: created.id },
          tenantId: scope.tenantId ?? null,
          changes: {
            email: created.email,
            password_set: passwordHash !== null,
            assigned_role: scope.tenantId !== undefined ? 'tenant_member' : undefined,
          },
        });
        return created;
      });
      if (scope.tenantId !== undefined) await this.events.publish('authz.changed', { principalIds: [user.id] });
      return adminUserView(user);
    } catch (error) {
      if (isUniqueViolation(error)) throw new AppError('email_taken');
      throw error;
    }
  }

  async update(scope: AdminScope, id: string, input: { email?: string; displayName?: string | null }): Promise<AdminUserView> {
    await this.visibility.requireOwnedByTenant(this.prisma, scope, id);
    try {
      return await this.prisma.$transaction(async (tx) => {
        const before = await this.users.findByIdOrThrow(tx, id);
        const emailChanged = input.email !== undefined && input.email !== before.email;
        const user = await this.users.updateProfile(tx, id, {
          displayName: input.displayName,
          email: emailChanged ? input.email : undefined,
        });
        await this.audit.record(tx, {
          action: 'iam.user.update',
          target: { type: 'user', id },
          tenantId: scope.tenantId ?? null,
          changes: {
            email: emailChanged ? { from: before.email, to: user.email } : undefined,
            display_name: input.displayName !== undefined ? { from: before.displayName, to: user.displayName } : undefined,
          },
        });
        return adminUserView(user);
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw new AppError('email_taken');
      throw error;
    }
  }

  async delete(scope: AdminScope, id: string): Promise<void> {
    await this.visibility.requireOwnedByTenant(this.prisma, scope, id);
    const revoked = await this.prisma.$transaction(async (tx) => {
      const user = await this.users.findByIdOrThrow(tx, id);
      const sessionIds = await this.sessions.revokeIn(tx, { userId: id }, 'account_deleted');
      await this.assignments.deleteAllOf(tx, id);
      await this.deletedPrincipals.remember(tx, id);
      await this.users.delete(tx, id);
      await this.audit.record(tx, {
        action: 'iam.user.delete',
        target: { type: 'user', id },
        tenantId: scope.tenantId ?? null,
        changes: { email: user.email },
      });
      return sessionIds;
    });
    await this.afterStatusChange(id, false, revoked);
  }

  /** Disabling signs the account out everywhere; its tokens stop working on every replica. */
  async setStatus(scope: AdminScope, id: string, active: boolean): Promise<AdminUserView> {
    await this.visibility.requireOwnedByTenant(this.prisma, scope, id);
    const { user, revoked } = await this.prisma.$transaction(async (tx) => {
      const updated = await this.users.setStatus(tx, id, active ? 'active' : 'disabled');
      const sessionIds = active ? [] : await this.sessions.revokeIn(tx, { userId: id }, 'account_disabled');
      await this.audit.record(tx, {
        action: active ? 'iam.user.enable' : 'iam.user.disable',
        target: { type: 'user', id },
        tenantId: scope.tenantId ?? null,
        changes: { status: updated.status, sessions_revoked: sessionIds.length },
      });
      return { user: updated, revoked: sessionIds };
    });
    await this.afterStatusChange(id, active, revoked);
    return adminUserView(user);
  }

  async unlock(scope: AdminScope, id: string): Promise<void> {
    const user = await this.visibleUser(scope, id);
    await this.prisma.$transaction(async (tx) => {
      const lifted = await this.limiter.unlockIn(tx, user.email);
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

  async listSessions(scope: AdminScope, id: string): Promise<{ items: object[]; next_cursor: null }> {
    await this.visibleUser(scope, id);
    const rows = await this.sessionRows.listLiveForUser(this.prisma, id);
    return {
      items: rows.map((session) => ({
        id: session.id,
        created_at: session.createdAt.toISOString(),
        last_used_at: session.lastUsedAt.toISOString(),
        expires_at: session.expiresAt.toISOString(),
        ip: session.ip,
        user_agent: session.userAgent,
        amr: session.amr,
      })),
      next_cursor: null,
    };
  }

  /** Global sign-out. */
  async revokeSessions(scope: AdminScope, id: string): Promise<void> {
    await this.visibleUser(scope, id);
    const revoked = await this.prisma.$transaction(async (tx) => {
      const sessionIds = await this.sessions.revokeIn(tx, { userId: id }, 'admin_revoked');
      await this.audit.record(tx, {
        action: 'iam.user.sessions_revoke',
        target: { type: 'user', id },
        tenantId: scope.tenantId ?? null,
        changes: { sessions_revoked: sessionIds.length },
      });
      return sessionIds;
    });
    await this.sessions.announceRevoked(revoked);
  }

  async resetMfa(scope: AdminScope, id: string): Promise<void> {
    await this.visibility.requireOwnedByTenant(this.prisma, scope, id);
    await this.prisma.$transaction(async (tx) => {
      const totpRemoved = await this.totp.delete(tx, id);
      const codesRemoved = await this.recoveryCodes.deleteAll(tx, id);
      await this.audit.record(tx, {
        action: 'iam.user.mfa_reset',
        target: { type: 'user', id },
        tenantId: scope.tenantId ?? null,
        changes: { totp_removed: totpRemoved, recovery_codes_removed: codesRemoved },
      });
    });
  }

  async revokeRecoveryCodes(scope: AdminScope, id: string): Promise<void> {
    await this.visibility.requireOwnedByTenant(this.prisma, scope, id);
    await this.prisma.$transaction(async (tx) => {
      const codesRemoved = await this.recoveryCodes.deleteAll(tx, id);
      await this.audit.record(tx, {
        action: 'iam.user.recovery_codes_revoke',
        target: { type: 'user', id },
        tenantId: scope.tenantId ?? null,
        changes: { recovery_codes_removed: codesRemoved },
      });
    });
  }

  private async visibleUser(scope: AdminScope, id: string): Promise<User> {
    const user = await this.users.findById(this.prisma, id);
    if (user === null || !(await this.visibility.isVisible(this.prisma, scope, id))) throw new AppError('not_found');
    return user;
  }

  private async afterStatusChange(principalId: string, active: boolean, revokedSessions: string[]): Promise<void> {
    await this.sessions.announceRevoked(revokedSessions);
    await this.events.publish('principal.status_changed', { principalId, active });
    await this.events.publish('authz.changed', { principalIds: [principalId] });
  }
}
