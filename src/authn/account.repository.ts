import { Injectable } from '@nestjs/common';
import { queryPrepared, type PreparedStatement } from '../database/prisma.service';
import type { Db } from '../database/transaction';
import type { User } from '../generated/prisma/client';

/** GET /v1/auth/me's data: the user, its tenant roles (tenant order, then assignment order) and TOTP state. */
export interface AccountProfile {
  user: Pick<User, 'id' | 'email' | 'emailVerifiedAt' | 'displayName'>;
  tenantRoles: Array<{ tenantId: string; roleName: string }>;
  totpConfirmed: boolean;
}

const PROFILE: PreparedStatement = {
  name: 'account_profile',
  text: `SELECT u.id, u.email, u.email_verified_at, u.display_name,
      EXISTS (SELECT 1 FROM totp_credentials t WHERE t.user_id = u.id AND t.confirmed_at IS NOT NULL) AS totp_confirmed,
      COALESCE((SELECT json_agg(json_build_object('tenant_id', a.tenant_id, 'role', r.name) ORDER BY a.tenant_id, a.created_at)
                FROM assignments a JOIN roles r ON r.id = a.role_id
                WHERE a.principal_id = u.id AND a.tenant_id IS NOT NULL), '[]'::json) AS tenant_roles
    FROM users u WHERE u.id = $1`,
};

/** Reads that span the identity, authorization and MFA tables for one account, in one statement. */
@Injectable()
export class AccountRepository {
  async profile(db: Db, userId: string): Promise<AccountProfile | null> {
    const rows = await queryPrepared<{
      id: string;
      email: string;
      email_verified_at: Date | null;
      display_name: string | null;
      totp_confirmed: boolean;
      tenant_roles: Array<{ tenant_id: string; role: string }>;
    }>(db, PROFILE, [userId]);
    const row = rows[0];
    if (row === undefined) return null;
    return {
      user: {
        id: row.id,
        email: row.email,
        emailVerifiedAt: row.email_verified_at === null ? null : new Date(row.email_verified_at),
        displayName: row.display_name,
      },
      tenantRoles: row.tenant_roles.map((item) => ({ tenantId: item.tenant_id, roleName: item.role })),
      totpConfirmed: row.totp_confirmed,
    };
  }
}
