import { Injectable } from '@nestjs/common';
import type { Db } from '../database/transaction';
import type { Assignment, Role } from '../generated/prisma/client';
import type { GrantSource } from './decision-engine';

export const PLATFORM_ADMIN_ROLE_ID = 'platform_admin';

/** principal × (tenant | platform scope) × role: who holds what, where. */
@Injectable()
export class AssignmentRepository {
  async grantSourcesOf(db: Db, principalId: string): Promise<GrantSource[]> {
    const rows = await db.assignment.findMany({
      where: { principalId },
      include: { role: { select: { id: true, name: true, grants: true } } },
      orderBy: { createdAt: 'asc' },
    });
    return rows.map((row) => ({
      assignmentId: row.id,
      tenantId: row.tenantId,
      roleId: row.role.id,
      roleName: row.role.name,
      grants: row.role.grants,
    }));
  }

  async isPlatformAdmin(db: Db, principalId: string): Promise<boolean> {
    return (await db.assignment.count({ where: { principalId, tenantId: null, roleId: PLATFORM_ADMIN_ROLE_ID } })) > 0;
  }

  /** Tenant-scoped assignments of one principal with their role names, by tenant then age. */
  async tenantRolesOf(db: Db, principalId: string): Promise<Array<{ tenantId: string; roleName: string }>> {
    const rows = await db.assignment.findMany({
      where: { principalId, tenantId: { not: null } },
      include: { role: { select: { name: true } } },
      orderBy: [{ tenantId: 'asc' }, { createdAt: 'asc' }],
    });
    return rows.map((row) => ({ tenantId: row.tenantId!, roleName: row.role.name }));
  }

  /** Whether `principalId` holds platform_admin at platform scope. */
  async holdsPlatformAdmin(db: Db, principalId: string): Promise<boolean> {
    return (await db.assignment.count({ where: { principalId, roleId: PLATFORM_ADMIN_ROLE_ID, tenantId: null } })) > 0;
  }

  /** Principals other than `principalId` holding platform_admin at platform scope who can still act (disabled users do not count). */
  async countOtherActivePlatformAdmins(db: Db, principalId: string): Promise<number> {
    const rows = await db.$queryRaw<Array<{ holders: number }>>`
      SELECT count(DISTINCT a.principal_id)::int AS holders
      FROM assignments a LEFT JOIN users u ON u.id = a.principal_id
      WHERE a.role_id = ${PLATFORM_ADMIN_ROLE_ID} AND a.tenant_id IS NULL AND a.principal_id <> ${principalId}
        AND (a.principal_type <> 'user' OR u.status = 'active')`;
    return rows[0]?.holders ?? 0;
  }

  countPlatformAdmins(db: Db): Promise<number> {
    return db.assignment.count({ where: { roleId: PLATFORM_ADMIN_ROLE_ID, tenantId: null } });
  }

  /** Keyset page by id; each filter narrows. */
  list(db: Db, filter: { after?: string; principalId?: string; tenantId?: string }, take: number): Promise<Assignment[]> {
    return db.assignment.findMany({
      where: {
        ...(filter.after ? { id: { gt: filter.after } } : {}),
        ...(filter.principalId !== undefined ? { principalId: filter.principalId } : {}),
        ...(filter.tenantId !== undefined ? { tenantId: filter.tenantId } : {}),
      },
      orderBy: { id: 'asc' },
      take,
    });
  }

  findWithRole(db: Db, id: string): Promise<(Assignment & { role: Role }) | null> {
    return db.assignment.findUnique({ where: { id }, include: { role: true } });
  }

  /** Throws a unique violation when the same assignment exists. */
  create(
    db: Db,
    input: { principalId: string; principalType: 'user' | 'service_account'; tenantId: string | null; roleId: string },
  ): Promise<Assignment> {
    return db.assignment.create({ data: input });
  }

  async delete(db: Db, id: string): Promise<void> {
    await db.assignment.delete({ where: { id } });
  }

  async deleteAllOf(db: Db, principalId: string): Promise<void> {
    await db.assignment.deleteMany({ where: { principalId } });
  }

  countForRole(db: Db, roleId: string): Promise<number> {
    return db.assignment.count({ where: { roleId } });
  }

  countInTenant(db: Db, tenantId: string): Promise<number> {
    return db.assignment.count({ where: { tenantId } });
  }

  async userIdsInTenant(db: Db, tenantId: string): Promise<string[]> {
    const rows = await db.assignment.findMany({
      where: { tenantId, principalType: 'user' },
      select: { principalId: true },
      distinct: ['principalId'],
    });
    return rows.map((row) => row.principalId);
  }

  async isAssignedInTenant(db: Db, principalId: string, tenantId: string): Promise<boolean> {
    return (await db.assignment.count({ where: { principalId, tenantId } })) > 0;
  }

  /** Assignments at platform scope or in any tenant other than `tenantId`. */
  async isAssignedOutside(db: Db, principalId: string, tenantId: string): Promise<boolean> {
    const elsewhere = await db.assignment.count({
      where: { principalId, OR: [{ tenantId: null }, { tenantId: { not: tenantId } }] },
    });
    return elsewhere > 0;
  }
}
