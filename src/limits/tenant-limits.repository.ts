import { Injectable } from '@nestjs/common';
import type { Db } from '../database/transaction';
import type { TenantLimit } from '../generated/prisma/client';

/** Per-tenant traffic limit overrides (table tenant_limits, owned here). */
@Injectable()
export class TenantLimitsRepository {
  all(db: Db): Promise<TenantLimit[]> {
    return db.tenantLimit.findMany();
  }

  find(db: Db, tenantId: string): Promise<TenantLimit | null> {
    return db.tenantLimit.findUnique({ where: { tenantId } });
  }

  upsert(db: Db, tenantId: string, rate: string, burst: number): Promise<TenantLimit> {
    return db.tenantLimit.upsert({ where: { tenantId }, create: { tenantId, rate, burst }, update: { rate, burst } });
  }

  /** Whether there was one to remove. */
  async remove(db: Db, tenantId: string): Promise<boolean> {
    const { count } = await db.tenantLimit.deleteMany({ where: { tenantId } });
    return count > 0;
  }
}
