import { Injectable } from '@nestjs/common';
import type { Db } from '../database/transaction';
import type { Prisma, User } from '../generated/prisma/client';

export type UserWithPassword = User & { password: { hash: string } | null };

/** What a password sign-in needs about an account, read in one statement. */
export type SigninAccount = Pick<User, 'id' | 'email' | 'emailVerifiedAt' | 'displayName' | 'status'> & {
  passwordHash: string | null;
  /** a confirmed TOTP: the sign-in is MFA-pending */
  totpConfirmed: boolean;
};

/**
 * What a password sign-in reads about the account, with the email as `emailParameter`: sent in
 * the same statement as the attempt's counters (RateLimitCounterRepository.hitChainAndFindSigninAccount).
 */
export const SIGNIN_ACCOUNT_SQL = (emailParameter: string) =>
  `SELECT u.id, u.email, u.email_verified_at, u.display_name, u.status, p.hash AS password_hash,
      EXISTS (SELECT 1 FROM totp_credentials t WHERE t.user_id = u.id AND t.confirmed_at IS NOT NULL) AS totp_confirmed
    FROM users u LEFT JOIN password_credentials p ON p.user_id = u.id
    WHERE u.email = ${emailParameter}`;

/** A row of SIGNIN_ACCOUNT_SQL; every column null when it was left-joined and there is no such account. */
export interface SigninAccountRow {
  id: string | null;
  email: string;
  email_verified_at: Date | null;
  display_name: string | null;
  status: string;
  password_hash: string | null;
  totp_confirmed: boolean;
}

export function signinAccount(row: SigninAccountRow | undefined): SigninAccount | null {
  if (row === undefined || row.id === null) return null;
  return {
    id: row.id,
    email: row.email,
    emailVerifiedAt: row.email_verified_at === null ? null : new Date(row.email_verified_at),
    displayName: row.display_name,
    status: row.status,
    passwordHash: row.password_hash,
    totpConfirmed: row.totp_confirmed,
  };
}

@Injectable()
export class UserRepository {
  findById(db: Db, id: string): Promise<User | null> {
    return db.user.findUnique({ where: { id } });
  }

  /** Throws Prisma's not-found error when there is no such user. */
  findByIdOrThrow(db: Db, id: string): Promise<User> {
    return db.user.findUniqueOrThrow({ where: { id } });
  }

  /** Keyset page by id; `email` matches a part of the (lower-case) address, `ids` restricts to those users. */
  list(db: Db, filter: { after?: string; email?: string; status?: string; ids?: string[] }, take: number): Promise<User[]> {
    const where: Prisma.UserWhereInput = {
      ...(filter.after ? { id: { gt: filter.after } } : {}),
      ...(filter.email !== undefined ? { email: { contains: filter.email.toLowerCase() } } : {}),
      ...(filter.status !== undefined ? { status: filter.status } : {}),
    };
    if (filter.ids !== undefined) where.id = { ...(filter.after ? { gt: filter.after } : {}), in: filter.ids };
    return db.user.findMany({ where, orderBy: { id: 'asc' }, take });
  }

  /** Users that may not act (disabled or otherwise not active). */
  async inactiveIds(db: Db): Promise<string[]> {
    return (await db.user.findMany({ where: { status: { not: 'active' } }, select: { id: true } })).map((user) => user.id);
  }

  /** A changed email is unverified again. Throws a unique violation when the email is taken. */
  updateProfile(db: Db, id: string, input: { email?: string; displayName?: string | null }): Promise<User> {
    return db.user.update({
      where: { id },
      data: { displayName: input.displayName, ...(input.email !== undefined ? { email: input.email, emailVerifiedAt: null } : {}) },
    });
  }

  setStatus(db: Db, id: string, status: 'active' | 'disabled'): Promise<User> {
    return db.user.update({ where: { id }, data: { status } });
  }

  /** Its credentials, identities, sessions and MFA rows go with it (ON DELETE CASCADE). */
  async delete(db: Db, id: string): Promise<void> {
    await db.user.delete({ where: { id } });
  }

  findByIdWithPassword(db: Db, id: string): Promise<UserWithPassword | null> {
    return db.user.findUnique({ where: { id }, include: { password: { select: { hash: true } } } });
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

  async hasPassword(db: Db, userId: string): Promise<boolean> {
    return (await db.passwordCredential.count({ where: { userId } })) > 0;
  }

  async deletePassword(db: Db, userId: string): Promise<void> {
    await db.passwordCredential.delete({ where: { userId } });
  }

  async setPasswordHash(db: Db, userId: string, hash: string): Promise<void> {
    await db.passwordCredential.upsert({ where: { userId }, create: { userId, hash }, update: { hash } });
  }

  /** Only when the stored hash is still `previous` (a concurrent reset wins). */
  async replaceHashIfUnchanged(db: Db, userId: string, previous: string, hash: string): Promise<void> {
    await db.passwordCredential.updateMany({ where: { userId, hash: previous }, data: { hash } });
  }

  /** The self-service email change, proven at the new address. Throws a unique violation when it is taken. */
  changeVerifiedEmail(db: Db, id: string, email: string): Promise<User> {
    return db.user.update({ where: { id }, data: { email, emailVerifiedAt: new Date() } });
  }

  /** Serializes changes to one user's credentials and sign-in methods (row lock until commit). */
  async lock(db: Db, id: string): Promise<void> {
    await db.$queryRaw`SELECT id FROM users WHERE id = ${id} FOR UPDATE`;
  }

  async markEmailVerified(db: Db, userId: string): Promise<void> {
    await db.user.updateMany({ where: { id: userId, emailVerifiedAt: null }, data: { emailVerifiedAt: new Date() } });
  }
}
