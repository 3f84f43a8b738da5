import { Injectable } from '@nestjs/common';
import { z } from 'zod';
import { AuditService } from '../audit/audit.service';
import { TenantRepository } from '../authz/tenant.repository';
import { AssignmentRepository } from '../authz/assignment.repository';
import { AppError } from '../common/app-error';
import { decodeCursor, toPage, type Page } from '../common/pagination';
import { PrismaService } from '../database/prisma.service';
import { isUniqueViolation } from '../database/transaction';
import type { Tenant } from '../generated/prisma/client';
import { ClusterEventBus } from '../messaging/cluster-event-bus';

export const tenantSchema = z
  .object({ id: z.string(), name: z.string(), created_at: z.string(), updated_at: z.string() })
  .meta({ id: 'Tenant' });
export type TenantView = z.infer<typeof tenantSchema>;

const view = (tenant: Tenant): TenantView => ({
  id: tenant.id,
  name: tenant.name,
  created_at: tenant.createdAt.toISOString(),
  updated_at: tenant.updatedAt.toISOString(),
});

@Injectable()
export class TenantsService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly tenants: TenantRepository,
    private readonly assignments: AssignmentRepository,
    private readonly audit: AuditService,
    private readonly events: ClusterEventBus,
  ) {}

  async list(limit: number, cursor?: string): Promise<Page<TenantView>> {
    const after = decodeCursor(cursor);
    const rows = await this.tenants.list(this.prisma, after, limit + 1);
    return toPage(rows, limit, (row) => row.id, view);
  }

  async get(id: string): Promise<TenantView> {
    const tenant = await this.tenants.findById(this.prisma, id);
    if (tenant === null) throw new AppError('not_found');
    return view(tenant);
  }

  async create(input: { id: string; name: string }): Promise<TenantView> {
    try {
      return await this.prisma.$transaction(async (tx) => {
        const tenant = await this.tenants.create(tx, input);
        await this.audit.record(tx, {
          action: 'platform.tenant.create',
          target: { type: 'tenant', id: tenant.id },
          tenantId: tenant.id,
          changes: { name_set: true },
        });
        return view(tenant);
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw new AppError('conflict', { detail: 'A tenant with this id exists.' });
      throw error;
    }
  }

  async update(id: string, input: { name?: string }): Promise<TenantView> {
    return this.prisma.$transaction(async (tx) => {
      const before = await this.tenants.findById(tx, id);
      if (before === null) throw new AppError('not_found');
      const tenant = await this.tenants.rename(tx, id, input.name);
      await this.audit.record(tx, {
        action: 'platform.tenant.update',
        target: { type: 'tenant', id },
        tenantId: id,
        changes: { name_changed: before.name !== tenant.name },
      });
      return view(tenant);
    });
  }

  /** Deleting a tenant removes its roles and every assignment in it (cascade), effective at once everywhere. */
  async delete(id: string): Promise<void> {
    await this.prisma.$transaction(async (tx) => {
      const tenant = await this.tenants.findById(tx, id);
      if (tenant === null) throw new AppError('not_found');
      const assignments = await this.assignments.countInTenant(tx, id);
      await this.tenants.delete(tx, id);
      await this.audit.record(tx, {
        action: 'platform.tenant.delete',
        target: { type: 'tenant', id },
        tenantId: id,
        changes: { assignments_removed: assignments },
      });
    });
    await this.events.publish('authz.changed', {});
  }
}
