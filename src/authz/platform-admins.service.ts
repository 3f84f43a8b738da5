import { Injectable } from '@nestjs/common';
import type { Db } from '../database/transaction';

export const PLATFORM_ADMIN_ROLE_ID = 'platform_admin';

/** Who holds the built-in platform_admin role at platform scope (used by the bootstrap admin). */
@Injectable()
export class PlatformAdminsService {
  async grant(db: Db, userId: string): Promise<void> {
    await db.assignment.create({ data: { principalId: userId, principalType: 'user', tenantId: null, roleId: PLATFORM_ADMIN_ROLE_ID } });
  }

  countIn(db: Db): Promise<number> {
    return db.assignment.count({ where: { roleId: PLATFORM_ADMIN_ROLE_ID, tenantId: null } });
  }
}
