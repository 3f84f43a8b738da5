import { Injectable } from '@nestjs/common';
import { z } from 'zod';
import { AuditService } from '../audit/audit.service';
import { AssignmentRepository, PLATFORM_ADMIN_ROLE_ID } from '../authz/assignment.repository';
import { RoleRepository } from '../authz/role.repository';
import { TenantRepository } from '../authz/tenant.repository';
import { AppError } from '../common/app-error';
import { decodeCursor, toPage, type Page } from '../common/pagination';
import { PrismaService } from '../database/prisma.service';
import { isUniqueViolation, type Db } from '../database/transaction';
import type { Assignment } from '../generated/prisma/client';
import { ServiceAccountRepository } from '../identity/service-account.repository';
import { UserRepository } from '../identity/user.repository';
import { ClusterEventBus } from '../messaging/cluster-event-bus';
import type { AdminScope } from '../authz/admin-scope';
import { PlatformAdminsService } from '../authz/platform-admins.service';
import { StepUpService } from '../authz/step-up.service';
import { EscalationCheck } from './escalation-check';

const principalType = z.enum(['user', 'service_account']);

export const assignmentSchema = z
  .object({
    id: z.string(),
    principal_id: z.string(),
    principal_type: principalType,
    tenant_id: z.string().nullable(),
    role_id: z.string(),
    created_at: z.string(),
  })
  .meta({ id: 'Assignment' });
export type AssignmentView = z.infer<typeof assignmentSchema>;

const view = (row: Assignment): AssignmentView => ({
  id: row.id,
  principal_id: row.principalId,
  // the column is text; the service writes only these two values
  principal_type: row.principalType as z.infer<typeof principalType>,
  tenant_id: row.tenantId,
  role_id: row.roleId,
  created_at: row.createdAt.toISOString(),
});

@Injectable()
export class AssignmentsService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly assignments: AssignmentRepository,
    private readonly roles: RoleRepository,
    private readonly tenants: TenantRepository,
    private readonly users: UserRepository,
    private readonly serviceAccounts: ServiceAccountRepository,
    private readonly audit: AuditService,
    private readonly events: ClusterEventBus,
    private readonly escalation: EscalationCheck,
    private readonly stepUp: StepUpService,
    private readonly platformAdmins: PlatformAdminsService,
  ) {}

  async list(
    scope: AdminScope,
    filters: { principalId?: string; tenantId?: string },
    limit: number,
    cursor?: string,
  ): Promise<Page<AssignmentView>> {
    const after = decodeCursor(cursor);
    if (scope.tenantId !== undefined && filters.tenantId !== undefined && filters.tenantId !== scope.tenantId) {
      return { items: [], next_cursor: null };
    }
    const rows = await this.assignments.list(
      this.prisma,
      { after, principalId: filters.principalId, tenantId: scope.tenantId ?? filters.tenantId },
      limit + 1,
    );
    return toPage(rows, limit, (row) => row.id, view);
  }

  async create(scope: AdminScope, input: { principalId: string; tenantId: string | null; roleId: string }): Promise<AssignmentView> {
    const target = { type: 'principal', id: input.principalId };
    const role = await this.roles.findById(this.prisma, input.roleId);
    if (scope.tenantId !== undefined) {
      if (input.tenantId === null) {
        await this.escalation.refuse('iam.assignment.create', 'a tenant admin cannot assign at platform scope', target);
      }
      if (input.tenantId !== scope.tenantId) {
        await this.escalation.refuse('iam.assignment.create', `a tenant admin can only assign in tenant ${scope.tenantId}`, target);
      }
      if (input.roleId === PLATFORM_ADMIN_ROLE_ID) {
        await this.escalation.refuse('iam.assignment.create', 'a tenant admin cannot assign platform_admin', target);
      }
    }
    if (role === null || (role.tenantId !== null && role.tenantId !== input.tenantId)) {
      throw new AppError('validation_failed', { errors: [{ path: 'role_id', message: 'is not a role usable in this scope' }] });
    }
    if (!(await this.escalation.isPlatformAdmin(scope))) {
      const missing = await this.escalation.missingGrants(scope, role.grants);
      if (missing.length > 0) {
        await this.escalation.refuse(
          'iam.assignment.create',
          `cannot assign a role holding what you do not hold: ${missing.join(', ')}`,
          target,
        );
      }
    }
    if (input.tenantId === null) await this.stepUp.requireForAdmin(scope.actor, 'admin_sensitive', 'platform-scope assignment create');
    try {
      const created = await this.prisma.$transaction(async (tx) => {
        const principalType = await this.principalType(tx, input.principalId);
        if (principalType === undefined) {
          throw new AppError('validation_failed', {
            errors: [{ path: 'principal_id', message: 'is not a known user or service account' }],
          });
        }
        if (input.tenantId !== null && !(await this.tenants.exists(tx, input.tenantId))) {
          throw new AppError('validation_failed', { errors: [{ path: 'tenant_id', message: 'is not a known tenant' }] });
        }
        const row = await this.assignments.create(tx, {
          principalId: input.principalId,
          principalType,
          tenantId: input.tenantId,
          roleId: input.roleId,
        });
        await this.audit.record(tx, {
          action: 'iam.assignment.create',
          target,
          tenantId: input.tenantId,
          changes: { assignment_id: row.id, role_id: role.id, tenant_id: input.tenantId },
        });
        return row;
      });
      await this.events.publish('authz.changed', { principalIds: [input.principalId] });
      return view(created);
    } catch (error) {
      if (isUniqueViolation(error)) throw new AppError('conflict', { detail: 'This assignment exists.' });
      throw error;
    }
  }

  async delete(scope: AdminScope, id: string): Promise<void> {
    const existing = await this.assignments.findWithRole(this.prisma, id);
    if (existing === null || (scope.tenantId !== undefined && existing.tenantId !== scope.tenantId)) throw new AppError('not_found');
    if (existing.tenantId === null) await this.stepUp.requireForAdmin(scope.actor, 'admin_sensitive', 'platform-scope assignment delete');
    await this.prisma.$transaction(async (tx) => {
      if (existing.tenantId === null && existing.roleId === PLATFORM_ADMIN_ROLE_ID) {
        await this.platformAdmins.refuseLosingLast(tx, existing.principalId);
      }
      await this.assignments.delete(tx, id);
      await this.audit.record(tx, {
        action: 'iam.assignment.delete',
        target: { type: 'principal', id: existing.principalId },
        tenantId: existing.tenantId,
        changes: { assignment_id: id, role_id: existing.roleId, tenant_id: existing.tenantId },
      });
    });
    await this.events.publish('authz.changed', { principalIds: [existing.principalId] });
  }

  private async principalType(tx: Db, id: string): Promise<'user' | 'service_account' | undefined> {
    if ((await this.users.findById(tx, id)) !== null) return 'user';
    if (await this.serviceAccounts.exists(tx, id)) return 'service_account';
    return undefined;
  }
}
