import { Injectable } from '@nestjs/common';
import { AppError } from '../common/app-error';
import type { Db } from '../database/transaction';
import type { AdminScope } from '../admin/admin-scope';

/**
 * Tenant admins see only principals assigned in their tenant (or service accounts owned by
 * it); anything else answers 404, so ids cannot be probed. Platform scope sees everyone.
 */
@Injectable()
export class PrincipalVisibility {
  async isVisible(db: Db, scope: AdminScope, principalId: string): Promise<boolean> {
    if (scope.tenantId === undefined) return true;
    const assigned = await db.assignment.count({ where: { principalId, tenantId: scope.tenantId } });
    if (assigned > 0) return true;
    return (await db.serviceAccount.count({ where: { id: principalId, tenantId: scope.tenantId } })) > 0;
  }

  async requireVisible(db: Db, scope: AdminScope, principalId: string): Promise<void> {
    if (!(await this.isVisible(db, scope, principalId))) throw new AppError('not_found');
  }

  /**
   * Account-wide changes (disable, delete, password, MFA) reach beyond one tenant; a tenant
   * admin may make them only for principals that belong to no other tenant and hold no platform role.
   */
  async requireOwnedByTenant(db: Db, scope: AdminScope, principalId: string): Promise<void> {
    await this.requireVisible(db, scope, principalId);
    if (scope.tenantId === undefined) return;
    const elsewhere = await db.assignment.count({
      where: { principalId, OR: [{ tenantId: null }, { tenantId: { not: scope.tenantId } }] },
    });
    if (elsewhere > 0) {
      throw new AppError('forbidden', { detail: 'This account also belongs elsewhere; a platform admin must change it.' });
    }
  }
}
