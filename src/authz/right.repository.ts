import { Injectable } from '@nestjs/common';
import type { Db } from '../database/transaction';
import type { Right } from '../generated/prisma/client';

/** The catalogue of rights roles may grant. */
@Injectable()
export class RightRepository {
  listAll(db: Db): Promise<Right[]> {
    return db.right.findMany({ orderBy: { key: 'asc' } });
  }

  async keys(db: Db): Promise<Set<string>> {
    return new Set((await db.right.findMany({ select: { key: true } })).map((right) => right.key));
  }

  findByKey(db: Db, key: string): Promise<Right | null> {
    return db.right.findUnique({ where: { key } });
  }

  /** Throws a unique violation when the key exists. */
  create(db: Db, input: { key: string; description: string | null }): Promise<Right> {
    return db.right.create({ data: input });
  }

  updateDescription(db: Db, key: string, description: string | undefined): Promise<Right> {
    return db.right.update({ where: { key }, data: { description } });
  }

  async delete(db: Db, key: string): Promise<void> {
    await db.right.delete({ where: { key } });
  }

  /** Roles whose grants name this right, bare or with a qualifier (`key:...`). */
  async countRolesGranting(db: Db, key: string): Promise<number> {
    const rows = await db.$queryRaw<Array<{ n: number }>>`
      SELECT count(*)::int AS n FROM roles r, unnest(r.grants) AS g WHERE g = ${key} OR g LIKE ${`${key}:%`}`;
    return rows[0]?.n ?? 0;
  }
}
