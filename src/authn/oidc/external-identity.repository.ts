import { Injectable } from '@nestjs/common';
import type { Db } from '../../database/transaction';
import type { ExternalIdentity, User } from '../../generated/prisma/client';

@Injectable()
export class ExternalIdentityRepository {
  findBySubject(db: Db, issuer: string, subject: string): Promise<(ExternalIdentity & { user: User }) | null> {
    return db.externalIdentity.findUnique({ where: { issuer_subject: { issuer, subject } }, include: { user: true } });
  }

  /** Throws a unique violation when (issuer, subject) is already linked. */
  create(
    db: Db,
    input: { userId: string; issuer: string; subject: string; email?: string; emailVerified: boolean },
  ): Promise<ExternalIdentity> {
    return db.externalIdentity.create({
      data: {
        userId: input.userId,
        issuer: input.issuer,
        subject: input.subject,
        email: input.email ?? null,
        emailVerified: input.emailVerified,
        lastSignInAt: new Date(),
      },
    });
  }

  async recordSignIn(db: Db, id: string, claims: { email?: string; emailVerified: boolean }): Promise<void> {
    await db.externalIdentity.update({
      where: { id },
      data: { lastSignInAt: new Date(), email: claims.email ?? null, emailVerified: claims.emailVerified },
    });
  }

  listForUser(db: Db, userId: string): Promise<ExternalIdentity[]> {
    return db.externalIdentity.findMany({ where: { userId }, orderBy: { createdAt: 'asc' } });
  }

  findForUser(db: Db, userId: string, id: string): Promise<ExternalIdentity | null> {
    return db.externalIdentity.findFirst({ where: { id, userId } });
  }

  countForUser(db: Db, userId: string): Promise<number> {
    return db.externalIdentity.count({ where: { userId } });
  }

  async delete(db: Db, id: string): Promise<void> {
    await db.externalIdentity.delete({ where: { id } });
  }
}
