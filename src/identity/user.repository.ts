import { Injectable } from '@nestjs/common';
import type { Db } from '../database/transaction';
import type { User } from '../generated/prisma/client';

export type UserWithPassword = User & { password: { hash: string } | null };

@Injectable()
export class UserRepository {
  findById(db: Db, id: string): Promise<User | null> {
    return db.user.findUnique({ where: { id } });
  }

  findByEmailWithPassword(db: Db, email: string): Promise<UserWithPassword | null> {
    return db.user.findUnique({ where: { email }, include: { password: { select: { hash: true } } } });
  }

  /** Throws a unique violation when the email is taken. */
  createWithPassword(
    db: Db,
    input: { email: string; displayName?: string; passwordHash: string | null; emailVerified?: boolean },
  ): Promise<User> {
    return db.user.create({
      data: {
        email: input.email,
        displayName: input.displayName ?? null,
        emailVerifiedAt: input.emailVerified === true ? new Date() : null,
        password: input.passwordHash === null ? undefined : { create: { hash: input.passwordHash } },
      },
    });
  }

  async setPasswordHash(db: Db, userId: string, hash: string): Promise<void> {
    await db.passwordCredential.upsert({ where: { userId }, create: { userId, hash }, update: { hash } });
  }

  /** Only when the stored hash is still `previous` (a concurrent reset wins). */
  async replaceHashIfUnchanged(db: Db, userId: string, previous: string, hash: string): Promise<void> {
    await db.passwordCredential.updateMany({ where: { userId, hash: previous }, data: { hash } });
  }

  async markEmailVerified(db: Db, userId: string): Promise<void> {
    await db.user.updateMany({ where: { id: userId, emailVerifiedAt: null }, data: { emailVerifiedAt: new Date() } });
  }
}
