import { Injectable } from '@nestjs/common';
import type { Db } from '../database/transaction';
import type { GrantSource } from './decision-engine';

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
    return (await db.assignment.count({ where: { principalId, tenantId: null, roleId: 'platform_admin' } })) > 0;
  }
}
