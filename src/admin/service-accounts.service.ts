import { randomBytes } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { z } from 'zod';
import { AuditService } from '../audit/audit.service';
import { AssignmentRepository } from '../authz/assignment.repository';
import { TenantRepository } from '../authz/tenant.repository';
import { AppError } from '../common/app-error';
import { hashToken } from '../common/opaque-token';
import { decodeCursor, toPage, type Page } from '../common/pagination';
import { PrismaService } from '../database/prisma.service';
import type { Db } from '../database/transaction';
import type { ServiceAccount } from '../generated/prisma/client';
import { DeletedPrincipalRepository } from '../identity/deleted-principal.repository';
import { ServiceAccountRepository } from '../identity/service-account.repository';
import { ClusterEventBus } from '../messaging/cluster-event-bus';
import type { AdminScope } from '../authz/admin-scope';

/** After a rotation the previous secret keeps working this long, so clients can roll over. */
export const SECRET_ROTATION_OVERLAP_MS = 10 * 60 * 1000;

export const serviceAccountSchema = z
  .object({ id: z.string(), client_id: z.string(), name: z.string(), tenant_id: z.string().nullable(), created_at: z.string() })
  .meta({ id: 'ServiceAccount' });
export type ServiceAccountView = z.infer<typeof serviceAccountSchema>;

export const serviceAccountWithSecretSchema = serviceAccountSchema.extend({ client_secret: z.string().describe('shown only here') });
export type ServiceAccountWithSecret = z.infer<typeof serviceAccountWithSecretSchema>;

const view = (account: ServiceAccount): ServiceAccountView => ({
  id: account.id,
  client_id: account.clientId,
  name: account.name,
  tenant_id: account.tenantId,
  created_at: account.createdAt.toISOString(),
});

const newSecret = () => `ghs_${randomBytes(32).toString('base64url')}`;

@Injectable()
export class ServiceAccountsService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly accounts: ServiceAccountRepository,
    private readonly tenants: TenantRepository,
    private readonly assignments: AssignmentRepository,
    private readonly deletedPrincipals: DeletedPrincipalRepository,
    private readonly audit: AuditService,
    private readonly events: ClusterEventBus,
  ) {}

  async list(scope: AdminScope, limit: number, cursor?: string): Promise<Page<ServiceAccountView>> {
    const after = decodeCursor(cursor);
    const rows = await this.accounts.list(this.prisma, { after, tenantId: scope.tenantId }, limit + 1);
    return toPage(rows, limit, (row) => row.id, view);
  }

  /** The secret is in this answer only; the database keeps its hash. */
  async create(scope: AdminScope, input: { name: string; tenantId?: string }): Promise<ServiceAccountWithSecret> {
    const tenantId = scope.tenantId ?? input.tenantId ?? null;
    if (scope.tenantId !== undefined && input.tenantId !== undefined && input.tenantId !== scope.tenantId) throw new AppError('not_found');
    const secret = newSecret();
    const account = await this.prisma.$transaction(async (tx) => {
      if (tenantId !== null && !(await this.tenants.exists(tx, tenantId))) {
        throw new AppError('validation_failed', { errors: [{ path: 'tenant_id', message: 'is not a known tenant' }] });
      }
      const created = await this.accounts.create(tx, {
        name: input.name,
        tenantId,
        clientId: `sa_${randomBytes(12).toString('hex')}`,
        secretHash: hashToken(secret),
      });
      await this.audit.record(tx, {
        action: 'iam.service_account.create',
        target: { type: 'service_account', id: created.id },
        tenantId,
        changes: { client_id: created.clientId },
      });
      return created;
    });
    return { ...view(account), client_secret: secret };
  }

  async rotateSecret(scope: AdminScope, id: string): Promise<ServiceAccountWithSecret> {
    const secret = newSecret();
    const account = await this.prisma.$transaction(async (tx) => {
      const existing = await this.visible(tx, scope, id);
      const updated = await this.accounts.rotateSecret(tx, id, {
        secretHash: hashToken(secret),
        previousSecretHash: existing.secretHash,
        previousExpiresAt: new Date(Date.now() + SECRET_ROTATION_OVERLAP_MS),
      });
      await this.audit.record(tx, {
        action: 'iam.service_account.rotate_secret',
        target: { type: 'service_account', id },
        tenantId: updated.tenantId,
        changes: { previous_secret_valid_until: updated.previousExpiresAt?.toISOString() },
      });
      return updated;
    });
    return { ...view(account), client_secret: secret };
  }

  /** Its tokens stop working on every replica at once. */
  async delete(scope: AdminScope, id: string): Promise<void> {
    await this.prisma.$transaction(async (tx) => {
      const existing = await this.visible(tx, scope, id);
      await this.assignments.deleteAllOf(tx, id);
      await this.deletedPrincipals.remember(tx, id);
      await this.accounts.delete(tx, id);
      await this.audit.record(tx, {
        action: 'iam.service_account.delete',
        target: { type: 'service_account', id },
        tenantId: existing.tenantId,
        changes: { client_id: existing.clientId },
      });
    });
    await this.events.publish('principal.status_changed', { principalId: id, active: false });
    await this.events.publish('authz.changed', { principalIds: [id] });
  }

  private async visible(db: Db, scope: AdminScope, id: string): Promise<ServiceAccount> {
    const account = await this.accounts.findById(db, id);
    if (account === null || (scope.tenantId !== undefined && account.tenantId !== scope.tenantId)) throw new AppError('not_found');
    return account;
  }
}
