import { Injectable } from '@nestjs/common';
import type { Db } from '../database/transaction';
import type { ServiceAccount } from '../generated/prisma/client';

/** Service accounts: machine principals signing in with client credentials. */
@Injectable()
export class ServiceAccountRepository {
  /** Keyset page by id; with `tenantId`, only the accounts that tenant owns. */
  list(db: Db, filter: { after?: string; tenantId?: string }, take: number): Promise<ServiceAccount[]> {
    return db.serviceAccount.findMany({
      where: {
        ...(filter.after ? { id: { gt: filter.after } } : {}),
        ...(filter.tenantId !== undefined ? { tenantId: filter.tenantId } : {}),
      },
      orderBy: { id: 'asc' },
      take,
    });
  }

  findById(db: Db, id: string): Promise<ServiceAccount | null> {
    return db.serviceAccount.findUnique({ where: { id } });
  }

  findByClientId(db: Db, clientId: string): Promise<ServiceAccount | null> {
    return db.serviceAccount.findUnique({ where: { clientId } });
  }

  async exists(db: Db, id: string): Promise<boolean> {
    return (await db.serviceAccount.count({ where: { id } })) > 0;
  }

  async isOwnedByTenant(db: Db, id: string, tenantId: string): Promise<boolean> {
    return (await db.serviceAccount.count({ where: { id, tenantId } })) > 0;
  }

  create(db: Db, input: { name: string; tenantId: string | null; clientId: string; secretHash: string }): Promise<ServiceAccount> {
    return db.serviceAccount.create({ data: input });
  }

  /** The old hash stays valid until `previousExpiresAt`. */
  rotateSecret(
    db: Db,
    id: string,
    input: { secretHash: string; previousSecretHash: string; previousExpiresAt: Date },
  ): Promise<ServiceAccount> {
    return db.serviceAccount.update({ where: { id }, data: input });
  }

  async delete(db: Db, id: string): Promise<void> {
    await db.serviceAccount.delete({ where: { id } });
  }
}
