import { Injectable } from '@nestjs/common';
import type { Db } from '../../database/transaction';

@Injectable()
export class RecoveryCodeRepository {
  /** Replaces every code of the user (used or not) with these hashes. */
  async replaceAll(db: Db, userId: string, codeHashes: string[]): Promise<void> {
    await db.recoveryCode.deleteMany({ where: { userId } });
    await db.recoveryCode.createMany({ data: codeHashes.map((codeHash) => ({ userId, codeHash })) });
  }

  /** Compare-and-set: true for exactly one caller presenting an unused code. */
  async consume(db: Db, userId: string, codeHash: string): Promise<boolean> {
    const { count } = await db.recoveryCode.updateMany({ where: { userId, codeHash, usedAt: null }, data: { usedAt: new Date() } });
    return count === 1;
  }

  countUnused(db: Db, userId: string): Promise<number> {
    return db.recoveryCode.count({ where: { userId, usedAt: null } });
  }

  /** How many codes there were (used or not). */
  async deleteAll(db: Db, userId: string): Promise<number> {
    const { count } = await db.recoveryCode.deleteMany({ where: { userId } });
    return count;
  }
}
