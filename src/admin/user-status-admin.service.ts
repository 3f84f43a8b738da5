import { Injectable } from '@nestjs/common';
import { AuditService } from '../audit/audit.service';
import { AssignmentRepository } from '../authz/assignment.repository';
import type { AdminScope } from '../authz/admin-scope';
import { PlatformAdminsService } from '../authz/platform-admins.service';
import { PrincipalVisibility } from '../authz/principal-visibility';
import { PrismaService } from '../database/prisma.service';
import { DeletedPrincipalRepository } from '../identity/deleted-principal.repository';
import { UserRepository } from '../identity/user.repository';
import { ClusterEventBus } from '../messaging/cluster-event-bus';
import { SessionService } from '../session/session.service';
import { adminUserView, type AdminUserView } from './users-admin.service';

/** Disabling, enabling and deleting accounts: each signs the account out and reaches every replica at once. */
@Injectable()
export class UserStatusAdminService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly audit: AuditService,
    private readonly events: ClusterEventBus,
    private readonly visibility: PrincipalVisibility,
    private readonly sessions: SessionService,
    private readonly users: UserRepository,
    private readonly assignments: AssignmentRepository,
    private readonly deletedPrincipals: DeletedPrincipalRepository,
    private readonly platformAdmins: PlatformAdminsService,
  ) {}

  async delete(scope: AdminScope, id: string): Promise<void> {
    await this.visibility.requireOwnedByTenant(this.prisma, scope, id);
    const revoked = await this.prisma.$transaction(async (tx) => {
      await this.users.findByIdOrThrow(tx, id);
      await this.platformAdmins.refuseLosingLast(tx, id);
      const sessionIds = await this.sessions.revokeIn(tx, { userId: id }, 'account_deleted');
      await this.assignments.deleteAllOf(tx, id);
      await this.deletedPrincipals.remember(tx, id);
      await this.users.delete(tx, id);
      await this.audit.record(tx, {
        action: 'iam.user.delete',
        target: { type: 'user', id },
        tenantId: scope.tenantId ?? null,
      });
      return sessionIds;
    });
    await this.afterStatusChange(id, false, revoked);
  }

  /** Disabling signs the account out everywhere; its tokens stop working on every replica. */
  async setStatus(scope: AdminScope, id: string, active: boolean): Promise<AdminUserView> {
    await this.visibility.requireOwnedByTenant(this.prisma, scope, id);
    const { user, revoked } = await this.prisma.$transaction(async (tx) => {
      if (!active) await this.platformAdmins.refuseLosingLast(tx, id);
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

  private async afterStatusChange(principalId: string, active: boolean, revokedSessions: string[]): Promise<void> {
    await this.sessions.announceRevoked(revokedSessions);
    await this.events.publish('principal.status_changed', { principalId, active });
    await this.events.publish('authz.changed', { principalIds: [principalId] });
  }
}
