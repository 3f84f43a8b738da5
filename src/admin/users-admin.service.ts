import { Injectable } from '@nestjs/common';
import { z } from 'zod';
import { AuditService } from '../audit/audit.service';
import { AssignmentRepository } from '../authz/assignment.repository';
import { AppError } from '../common/app-error';
import { decodeCursor, toPage, type Page } from '../common/pagination';
import { PrismaService } from '../database/prisma.service';
import { isUniqueViolation } from '../database/transaction';
import type { User } from '../generated/prisma/client';
import { PasswordHasher } from '../identity/password-hasher';
import { UserRepository } from '../identity/user.repository';
import { assertPasswordAllowed } from '../identity/password-policy';
import { ClusterEventBus } from '../messaging/cluster-event-bus';
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

/**
 * Finding, creating and editing user accounts. Status, credentials, MFA and sessions have their
 * own services beside this one (user-*-admin.service.ts). Every change is audited in its transaction.
 */
@Injectable()
export class UsersAdminService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly audit: AuditService,
    private readonly events: ClusterEventBus,
    private readonly visibility: PrincipalVisibility,
    private readonly hasher: PasswordHasher,
    private readonly users: UserRepository,
    private readonly assignments: AssignmentRepository,
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
    return adminUserView(await this.visibility.requireVisibleUser(this.prisma, scope, id));
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
            email_changed: emailChanged ? true : undefined,
            display_name_changed: input.displayName !== undefined && input.displayName !== before.displayName ? true : undefined,
          },
        });
        return adminUserView(user);
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw new AppError('email_taken');
      throw error;
    }
  }
}
