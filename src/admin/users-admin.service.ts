import { Injectable } from '@nestjs/common';
import { AuditService } from '../audit/audit.service';
import { AbuseLimiter } from '../authn/abuse-limiter.service';
import { AppError } from '../common/app-error';
import { decodeCursor, toPage, type Page } from '../common/pagination';
import { PrismaService } from '../database/prisma.service';
import { isUniqueViolation } from '../database/transaction';
import type { Prisma, User } from '../generated/prisma/client';
import { PasswordHasher } from '../identity/password-hasher';
import { assertPasswordAllowed } from '../identity/password-policy';
import { ClusterEventBus } from '../messaging/cluster-event-bus';
import { SessionService } from '../session/session.service';
import type { AdminScope } from './admin-scope';
import { PrincipalVisibility } from '../authz/principal-visibility';

export interface AdminUserView {
  id: string;
  email: string;
  email_verified: boolean;
  display_name: string | null;
  status: string;
  created_at: string;
  updated_at: string;
}

export const adminUserView = (user: User): AdminUserView => ({
  id: user.id,
  email: user.email,
  email_verified: user.emailVerifiedAt !== null,
  display_name: user.displayName,
  status: user.status,
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
    const where: Prisma.UserWhereInput = {
      ...(after ? { id: { gt: after } } : {}),
      ...(filters.email !== undefined ? { email: { contains: filters.email.toLowerCase() } } : {}),
      ...(filters.status !== undefined ? { status: filters.status } : {}),
    };
    if (tenantId !== undefined) {
      const assigned = await this.prisma.assignment.findMany({
        where: { tenantId, principalType: 'user' },
        select: { principalId: true },
        distinct: ['principalId'],
      });
      where.id = { ...(after ? { gt: after } : {}), in: assigned.map((row) => row.principalId) };
    }
    const rows = await this.prisma.user.findMany({ where, orderBy: { id: 'asc' }, take: limit + 1 });
    return toPage(rows, limit, (row) => row.id, adminUserView);
  }

  async get(scope: AdminScope, id: string): Promise<AdminUserView> {
    return adminUserView(await this.visibleUser(scope, id));
  }

  /** In a tenant scope the new user is assigned tenant_member there, so its creator can see it. */
  async create(scope: AdminScope, input: { email: string; password?: string; displayName?: string }): Promise<AdminUserView> {
    if (input.password !== undefined) assertPasswordAllowed(input.password, input.email);
    const passwordHash = input.password === undefined ? null : await this.hasher.hash(input.password);
    try {
      const user = await this.prisma.$transaction(async (tx) => {
        const created = await tx.user.create({
          data: {
            email: input.email,
            displayName: input.displayName ?? null,
            password: passwordHash === null ? undefined : { create: { hash: passwordHash } },
          },
        });
        if (scope.tenantId !== undefined) {
          await tx.assignment.create({
            data: { principalId: created.id, principalType: 'user', tenantId: scope.tenantId, roleId: 'tenant_member' },
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
        const before = await tx.user.findUniqueOrThrow({ where: { id } });
        const emailChanged = input.email !== undefined && input.email !== before.email;
        const user = await tx.user.update({
          where: { id },
          data: {
            displayName: input.displayName,
            ...(emailChanged ? { email: input.email, emailVerifiedAt: null } : {}),
          },
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
      const user = await tx.user.findUniqueOrThrow({ where: { id } });
      const sessionIds = await this.sessions.revokeIn(tx, { userId: id }, 'account_deleted');
      await tx.assignment.deleteMany({ where: { principalId: id } });
      await tx.deletedPrincipal.upsert({ where: { principalId: id }, create: { principalId: id }, update: { deletedAt: new Date() } });
      await tx.user.delete({ where: { id } });
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
      const updated = await tx.user.update({ where: { id }, data: { status: active ? 'active' : 'disabled' } });
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
    const user = await this.prisma.user.findUniqueOrThrow({ where: { id } });
    assertPasswordAllowed(password, user.email);
    const hash = await this.hasher.hash(password);
    const revoked = await this.prisma.$transaction(async (tx) => {
      await tx.passwordCredential.upsert({ where: { userId: id }, create: { userId: id, hash }, update: { hash } });
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
      const credential = await tx.passwordCredential.findUnique({ where: { userId: id } });
      if (credential === null) throw new AppError('not_found', { detail: 'This user has no password.' });
      if ((await tx.externalIdentity.count({ where: { userId: id } })) === 0) {
        throw new AppError('conflict', { detail: 'The password is the last sign-in method of this user.' });
      }
      await tx.passwordCredential.delete({ where: { userId: id } });
      await this.audit.record(tx, { action: 'iam.user.password_remove', target: { type: 'user', id }, tenantId: scope.tenantId ?? null });
    });
  }

  async listSessions(scope: AdminScope, id: string): Promise<{ items: object[]; next_cursor: null }> {
    await this.visibleUser(scope, id);
    const rows = await this.prisma.session.findMany({
      where: { userId: id, revokedAt: null, expiresAt: { gt: new Date() } },
      orderBy: { createdAt: 'desc' },
    });
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
      const totp = await tx.totpCredential.deleteMany({ where: { userId: id } });
      const codes = await tx.recoveryCode.deleteMany({ where: { userId: id } });
      await this.audit.record(tx, {
        action: 'iam.user.mfa_reset',
        target: { type: 'user', id },
        tenantId: scope.tenantId ?? null,
        changes: { totp_removed: totp.count > 0, recovery_codes_removed: codes.count },
      });
    });
  }

  async revokeRecoveryCodes(scope: AdminScope, id: string): Promise<void> {
    await this.visibility.requireOwnedByTenant(this.prisma, scope, id);
    await this.prisma.$transaction(async (tx) => {
      const codes = await tx.recoveryCode.deleteMany({ where: { userId: id } });
      await this.audit.record(tx, {
        action: 'iam.user.recovery_codes_revoke',
        target: { type: 'user', id },
        tenantId: scope.tenantId ?? null,
        changes: { recovery_codes_removed: codes.count },
      });
    });
  }

  private async visibleUser(scope: AdminScope, id: string): Promise<User> {
    const user = await this.prisma.user.findUnique({ where: { id } });
    if (user === null || !(await this.visibility.isVisible(this.prisma, scope, id))) throw new AppError('not_found');
    return user;
  }

  private async afterStatusChange(principalId: string, active: boolean, revokedSessions: string[]): Promise<void> {
    await this.sessions.announceRevoked(revokedSessions);
    await this.events.publish('principal.status_changed', { principalId, active });
    await this.events.publish('authz.changed', { principalIds: [principalId] });
  }
}
