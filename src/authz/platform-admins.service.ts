import { Injectable } from '@nestjs/common';
import { AppError } from '../common/app-error';
import type { Db } from '../database/transaction';
import { AssignmentRepository, PLATFORM_ADMIN_ROLE_ID } from './assignment.repository';

/** pg_advisory_xact_lock key serializing changes that could remove the last platform admin. */
const LAST_PLATFORM_ADMIN_LOCK = 0x6c617374;

/** Who holds the built-in platform_admin role at platform scope (used by the bootstrap admin). */
@Injectable()
export class PlatformAdminsService {
  constructor(private readonly assignments: AssignmentRepository) {}

  async grant(db: Db, userId: string): Promise<void> {
    await this.assignments.create(db, { principalId: userId, principalType: 'user', tenantId: null, roleId: PLATFORM_ADMIN_ROLE_ID });
  }

  /**
   * Inside the caller's transaction, before `principalId` stops being able to act as platform
   * admin (assignment removed, account disabled or deleted): 409 `conflict` when it is the last
   * one. The advisory lock serializes such changes across replicas, so two admins removing each
   * other at once cannot leave none.
   */
  async refuseLosingLast(db: Db, principalId: string): Promise<void> {
    await db.$executeRaw`SELECT pg_advisory_xact_lock(${LAST_PLATFORM_ADMIN_LOCK})`;
    if (!(await this.assignments.holdsPlatformAdmin(db, principalId))) return;
    if ((await this.assignments.countOtherActivePlatformAdmins(db, principalId)) === 0) {
      throw new AppError('conflict', { detail: 'This is the last platform admin; make another one first.' });
    }
  }

  isAdmin(db: Db, userId: string): Promise<boolean> {
    return this.assignments.isPlatformAdmin(db, userId);
  }

  countIn(db: Db): Promise<number> {
    return this.assignments.countPlatformAdmins(db);
  }
}
