import { Injectable } from '@nestjs/common';
import type { Db } from '../database/transaction';

/** Deleted users and service accounts, remembered while a token they held could still be valid. */
@Injectable()
export class DeletedPrincipalRepository {
  async remember(db: Db, principalId: string): Promise<void> {
    await db.deletedPrincipal.upsert({ where: { principalId }, create: { principalId }, update: { deletedAt: new Date() } });
  }

  async deletedSince(db: Db, since: Date): Promise<string[]> {
    const rows = await db.deletedPrincipal.findMany({ where: { deletedAt: { gt: since } }, select: { principalId: true } });
    return rows.map((row) => row.principalId);
  }
}
