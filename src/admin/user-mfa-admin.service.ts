import { Injectable } from '@nestjs/common';
import { AuditService } from '../audit/audit.service';
import { RecoveryCodeRepository } from '../authn/mfa/recovery-code.repository';
import { TotpCredentialRepository } from '../authn/mfa/totp-credential.repository';
import type { AdminScope } from '../authz/admin-scope';
import { PrincipalVisibility } from '../authz/principal-visibility';
import { PrismaService } from '../database/prisma.service';
import { AccountNotices } from '../identity/account-notices.service';
import { UserRepository } from '../identity/user.repository';

/** An admin resetting a user's second factor (TOTP and recovery codes), audited. */
@Injectable()
export class UserMfaAdminService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly audit: AuditService,
    private readonly visibility: PrincipalVisibility,
    private readonly totp: TotpCredentialRepository,
    private readonly recoveryCodes: RecoveryCodeRepository,
    private readonly users: UserRepository,
    private readonly notices: AccountNotices,
  ) {}

  async resetMfa(scope: AdminScope, id: string): Promise<void> {
    await this.visibility.requireOwnedByTenant(this.prisma, scope, id);
    const email = await this.prisma.$transaction(async (tx) => {
      const user = await this.users.findByIdOrThrow(tx, id);
      const totpRemoved = await this.totp.delete(tx, id);
      const codesRemoved = await this.recoveryCodes.deleteAll(tx, id);
      await this.audit.record(tx, {
        action: 'iam.user.mfa_reset',
        target: { type: 'user', id },
        tenantId: scope.tenantId ?? null,
        changes: { totp_removed: totpRemoved, recovery_codes_removed: codesRemoved },
      });
      return totpRemoved || codesRemoved > 0 ? user.email : null;
    });
    if (email !== null) this.notices.send(email, 'mfa_reset_by_admin');
  }

  async revokeRecoveryCodes(scope: AdminScope, id: string): Promise<void> {
    await this.visibility.requireOwnedByTenant(this.prisma, scope, id);
    await this.prisma.$transaction(async (tx) => {
      const codesRemoved = await this.recoveryCodes.deleteAll(tx, id);
      await this.audit.record(tx, {
        action: 'iam.user.recovery_codes_revoke',
        target: { type: 'user', id },
        tenantId: scope.tenantId ?? null,
        changes: { recovery_codes_removed: codesRemoved },
      });
    });
  }
}
