import { Injectable } from '@nestjs/common';
import type { Db } from '../database/transaction';
import type { Tenant } from '../generated/prisma/client';

/** Tenants: the scopes roles and assignments live in. */
@Injectable()
export class TenantRepository {
  /** Keyset page by id: up to `take` tenants after `after`. */
  list(db: Db, after: string | undefined, take: number): Promise<Tenant[]> {
    return db.tenant.findMany({ where: after ? { id: { gt: after } } : {}, orderBy: { id: 'asc' }, take });
  }

  findById(db: Db, id: string): Promise<Tenant | null> {
    return db.tenant.findUnique({ where: { id } });
  }

  async exists(db: Db, id: string): Promise<boolean> {
    return (await db.tenant.count({ where: { id } })) > 0;
  }

  /** Throws a unique violation when the id is taken. */
  create(db: Db, input: { id: string; name: string }): Promise<Tenant> {
    return db.tenant.create({ data: input });
  }

  rename(db: Db, id: string, name: string | undefined): Promise<Tenant> {
    return db.tenant.update({ where: { id }, data: { name } });
  }

  /** Its roles and assignments go with it (ON DELETE CASCADE). */
  async delete(db: Db, id: string): Promise<void> {
    await db.tenant.delete({ where: { id } });
  }
}
