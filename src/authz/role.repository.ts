import { Injectable } from '@nestjs/common';
import type { Db } from '../database/transaction';
import type { Role } from '../generated/prisma/client';

/** Roles: named sets of grants, platform-defined (tenantId null) or owned by one tenant. */
@Injectable()
export class RoleRepository {
  /** Keyset page by id; with `visibleInTenant`, platform roles plus that tenant's roles. */
  list(db: Db, filter: { after?: string; visibleInTenant?: string }, take: number): Promise<Role[]> {
    return db.role.findMany({
      where: {
        ...(filter.after ? { id: { gt: filter.after } } : {}),
        ...(filter.visibleInTenant !== undefined ? { OR: [{ tenantId: null }, { tenantId: filter.visibleInTenant }] } : {}),
      },
      orderBy: { id: 'asc' },
      take,
    });
  }

  findById(db: Db, id: string): Promise<Role | null> {
    return db.role.findUnique({ where: { id } });
  }

  /** Throws a unique violation when the name is taken in this scope. */
  create(db: Db, input: { name: string; tenantId: string | null; description: string | null; grants: string[] }): Promise<Role> {
    return db.role.create({ data: input });
  }

  update(db: Db, id: string, input: { name?: string; description?: string; grants?: string[] }): Promise<Role> {
    return db.role.update({ where: { id }, data: { name: input.name, description: input.description, grants: input.grants } });
  }

  /** Its assignments go with it (ON DELETE CASCADE). */
  async delete(db: Db, id: string): Promise<void> {
    await db.role.delete({ where: { id } });
  }
}
