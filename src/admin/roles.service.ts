import { Injectable } from '@nestjs/common';
import { z } from 'zod';
import { AuditService } from '../audit/audit.service';
import { AssignmentRepository } from '../authz/assignment.repository';
import { parseGrant } from '../authz/decision-engine';
import { RightRepository } from '../authz/right.repository';
import { RoleRepository } from '../authz/role.repository';
import { TenantRepository } from '../authz/tenant.repository';
import { AppError } from '../common/app-error';
import { decodeCursor, toPage, type Page } from '../common/pagination';
import { PrismaService } from '../database/prisma.service';
import { isUniqueViolation, type Db } from '../database/transaction';
import type { Role } from '../generated/prisma/client';
import { ClusterEventBus } from '../messaging/cluster-event-bus';
import type { AdminScope } from '../authz/admin-scope';
import { StepUpService } from '../authz/step-up.service';
import { EscalationCheck } from './escalation-check';

export const roleSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    tenant_id: z.string().nullable(),
    description: z.string().nullable(),
    built_in: z.boolean(),
    grants: z.array(z.string()),
  })
  .meta({ id: 'Role' });
export type RoleView = z.infer<typeof roleSchema>;

export const roleView = (role: Role): RoleView => ({
  id: role.id,
  name: role.name,
  tenant_id: role.tenantId,
  description: role.description,
  built_in: role.builtIn,
  grants: role.grants,
});

@Injectable()
export class RolesService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly roles: RoleRepository,
    private readonly tenants: TenantRepository,
    private readonly rights: RightRepository,
    private readonly assignments: AssignmentRepository,
    private readonly audit: AuditService,
    private readonly events: ClusterEventBus,
    private readonly escalation: EscalationCheck,
    private readonly stepUp: StepUpService,
  ) {}

  /** Platform-defined roles are visible to everyone with the right; tenant roles only in their tenant. */
  async list(scope: AdminScope, limit: number, cursor?: string): Promise<Page<RoleView>> {
    const after = decodeCursor(cursor);
    const rows = await this.roles.list(this.prisma, { after, visibleInTenant: scope.tenantId }, limit + 1);
    return toPage(rows, limit, (row) => row.id, roleView);
  }

  async get(scope: AdminScope, id: string): Promise<RoleView> {
    return roleView(await this.visibleRole(this.prisma, scope, id));
  }

  async create(
    scope: AdminScope,
    input: { name: string; tenantId: string | null; description?: string; grants: string[] },
  ): Promise<RoleView> {
    if (scope.tenantId !== undefined && input.tenantId !== scope.tenantId) {
      await this.escalation.refuse('iam.role.create', `a tenant admin can only create roles in tenant ${scope.tenantId}`, {
        type: 'role',
        id: input.name,
      });
    }
    await this.checkGrants(scope, 'iam.role.create', { type: 'role', id: input.name }, input.grants);
    if (input.tenantId === null) await this.stepUp.requireForAdmin(scope.actor, 'admin_sensitive', 'platform-scope role create');
    try {
      return await this.prisma.$transaction(async (tx) => {
        if (input.tenantId !== null && !(await this.tenants.exists(tx, input.tenantId))) {
          throw new AppError('validation_failed', { errors: [{ path: 'tenant_id', message: 'is not a known tenant' }] });
        }
        const role = await this.roles.create(tx, {
          name: input.name,
          tenantId: input.tenantId,
          description: input.description ?? null,
          grants: input.grants,
        });
        await this.audit.record(tx, {
          action: 'iam.role.create',
          target: { type: 'role', id: role.id },
          tenantId: role.tenantId,
          changes: { grants: role.grants },
        });
        return roleView(role);
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw new AppError('conflict', { detail: 'A role with this name exists in this scope.' });
      throw error;
    }
  }

  async update(scope: AdminScope, id: string, input: { name?: string; description?: string; grants?: string[] }): Promise<RoleView> {
    const existing = await this.visibleRole(this.prisma, scope, id);
    if (existing.builtIn) throw new AppError('conflict', { detail: 'Built-in roles cannot be changed.' });
    if (scope.tenantId !== undefined && existing.tenantId !== scope.tenantId) {
      await this.escalation.refuse('iam.role.update', 'platform-defined roles are changed by platform admins', { type: 'role', id });
    }
    if (input.grants !== undefined) await this.checkGrants(scope, 'iam.role.update', { type: 'role', id }, input.grants);
    if (existing.tenantId === null) await this.stepUp.requireForAdmin(scope.actor, 'admin_sensitive', 'platform-scope role update');
    const role = await this.prisma.$transaction(async (tx) => {
      const updated = await this.roles.update(tx, id, input);
      await this.audit.record(tx, {
        action:
          input.grants !== undefined && input.name === undefined && input.description === undefined
            ? 'iam.role.set_grants'
            : 'iam.role.update',
        target: { type: 'role', id },
        tenantId: updated.tenantId,
        changes: {
          grants: input.grants === undefined ? undefined : { from: existing.grants, to: updated.grants },
          name_changed: input.name === undefined ? undefined : true,
          description_changed: input.description === undefined ? undefined : true,
        },
      });
      return updated;
    });
    await this.events.publish('authz.changed', {});
    return roleView(role);
  }

  async delete(scope: AdminScope, id: string): Promise<void> {
    const existing = await this.visibleRole(this.prisma, scope, id);
    if (existing.builtIn) throw new AppError('conflict', { detail: 'Built-in roles cannot be deleted.' });
    if (scope.tenantId !== undefined && existing.tenantId !== scope.tenantId) {
      await this.escalation.refuse('iam.role.delete', 'platform-defined roles are deleted by platform admins', { type: 'role', id });
    }
    if (existing.tenantId === null) await this.stepUp.requireForAdmin(scope.actor, 'admin_sensitive', 'platform-scope role delete');
    await this.prisma.$transaction(async (tx) => {
      const assignments = await this.assignments.countForRole(tx, id);
      await this.roles.delete(tx, id);
      await this.audit.record(tx, {
        action: 'iam.role.delete',
        target: { type: 'role', id },
        tenantId: existing.tenantId,
        changes: { assignments_removed: assignments },
      });
    });
    await this.events.publish('authz.changed', {});
  }

  private async visibleRole(db: Db, scope: AdminScope, id: string): Promise<Role> {
    const role = await this.roles.findById(db, id);
    if (role === null || (scope.tenantId !== undefined && role.tenantId !== null && role.tenantId !== scope.tenantId)) {
      throw new AppError('not_found');
    }
    return role;
  }

  /** Grants must name known rights, and the actor must hold every one of them. */
  private async checkGrants(scope: AdminScope, action: string, target: { type: string; id: string }, grants: string[]): Promise<void> {
    const rights = await this.rights.keys(this.prisma);
    const errors = grants
      .map((grant, index) => ({ grant, index }))
      .filter(({ grant }) => grant !== '*' && !rights.has(parseGrant(grant).right))
      .map(({ index }) => ({ path: `grants.${index}`, message: 'names an unknown right' }));
    if (errors.length > 0) throw new AppError('validation_failed', { errors });
    const missing = await this.escalation.missingGrants(scope, grants);
    if (missing.length > 0) {
      await this.escalation.refuse(action, `cannot grant what you do not hold: ${missing.join(', ')}`, target);
    }
  }
}
