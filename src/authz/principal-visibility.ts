import { Injectable } from '@nestjs/common';
import { AppError } from '../common/app-error';
import type { Db } from '../database/transaction';
import type { User } from '../generated/prisma/client';
import type { AdminScope } from './admin-scope';
import { ServiceAccountRepository } from '../identity/service-account.repository';
import { UserRepository } from '../identity/user.repository';
import { AssignmentRepository } from './assignment.repository';

/**
 * Tenant admins see only principals assigned in their tenant (or service accounts owned by
 * it); anything else answers 404, so ids cannot be probed. Platform scope sees everyone.
 */
@Injectable()
export class PrincipalVisibility {
  constructor(
    private readonly assignments: AssignmentRepository,
    private readonly serviceAccounts: ServiceAccountRepository,
    private readonly users: UserRepository,
  ) {}

  async isVisible(db: Db, scope: AdminScope, principalId: string): Promise<boolean> {
    if (scope.tenantId === undefined) return true;
    if (await this.assignments.isAssignedInTenant(db, principalId, scope.tenantId)) return true;
    return this.serviceAccounts.isOwnedByTenant(db, principalId, scope.tenantId);
  }

  async requireVisible(db: Db, scope: AdminScope, principalId: string): Promise<void> {
    if (!(await this.isVisible(db, scope, principalId))) throw new AppError('not_found');
  }

  /** The user, when it exists and the scope may see it; 404 otherwise. */
  async requireVisibleUser(db: Db, scope: AdminScope, userId: string): Promise<User> {
    const user = await this.users.findById(db, userId);
    if (user === null || !(await this.isVisible(db, scope, userId))) throw new AppError('not_found');
    return user;
  }

  /**
   * Account-wide changes (disable, delete, password, MFA) reach beyond one tenant; a tenant
   * admin may make them only for principals that belong to no other tenant and hold no platform role.
   */
  async requireOwnedByTenant(db: Db, scope: AdminScope, principalId: string): Promise<void> {
    await this.requireVisible(db, scope, principalId);
    if (scope.tenantId === undefined) return;
    if (await this.assignments.isAssignedOutside(db, principalId, scope.tenantId)) {
      throw new AppError('forbidden', { detail: 'This account also belongs elsewhere; a platform admin must change it.' });
    }
  }
}
