import { Injectable } from '@nestjs/common';
import type { Db } from '../database/transaction';
import { AssignmentRepository, PLATFORM_ADMIN_ROLE_ID } from './assignment.repository';

/** Who holds the built-in platform_admin role at platform scope (used by the bootstrap admin). */
@Injectable()
export class PlatformAdminsService {
  constructor(private readonly assignments: AssignmentRepository) {}

  async grant(db: Db, userId: string): Promise<void> {
    await this.assignments.create(db, { principalId: userId, principalType: 'user', tenantId: null, roleId: PLATFORM_ADMIN_ROLE_ID });
  }

  countIn(db: Db): Promise<number> {
    return this.assignments.countPlatformAdmins(db);
  }
}
