import { Injectable } from '@nestjs/common';
import type { JWK } from 'jose';
import { PrismaService } from '../database/prisma.service';
import type { SealedValue } from '../common/sealed-column';
import type { Prisma, SigningKey } from '../generated/prisma/client';

/** Serializes key-ring changes across replicas (pg_advisory_xact_lock key). */
const KEY_RING_LOCK = 0x6b657973;

export type SigningKeyStatus = 'next' | 'active' | 'retired' | 'revoked';

export interface NewSigningKey {
  kid: string;
  publicJwk: JWK;
  privateSealed: string;
}

@Injectable()
export class SigningKeyRepository {
  constructor(private readonly prisma: PrismaService) {}

  /** Keys that may still verify a live token: next, active, and retired ones not yet past publishUntil. */
  findPublished(now: Date): Promise<SigningKey[]> {
    return this.prisma.signingKey.findMany({
      where: { OR: [{ status: { in: ['next', 'active'] } }, { status: 'retired', publishUntil: { gt: now } }] },
      orderBy: { createdAt: 'asc' },
    });
  }

  /** Runs `change` with the key ring locked against the other replica. */
  withLockedRing<T>(change: (tx: Prisma.TransactionClient) => Promise<T>): Promise<T> {
    return this.prisma.$transaction(async (tx) => {
      await tx.$executeRaw`SELECT pg_advisory_xact_lock(${KEY_RING_LOCK})`;
      return change(tx);
    });
  }

  findByStatus(tx: Prisma.TransactionClient, status: SigningKeyStatus): Promise<SigningKey | null> {
    return tx.signingKey.findFirst({ where: { status }, orderBy: { createdAt: 'desc' } });
  }

  async insert(tx: Prisma.TransactionClient, key: NewSigningKey, status: SigningKeyStatus, now: Date): Promise<void> {
    await tx.signingKey.create({
      data: {
        kid: key.kid,
        publicJwk: key.publicJwk as Prisma.InputJsonValue,
        privateSealed: key.privateSealed,
        status,
        activatedAt: status === 'active' ? now : null,
      },
    });
  }

  findByKid(tx: Prisma.TransactionClient, kid: string): Promise<SigningKey | null> {
    return tx.signingKey.findUnique({ where: { kid } });
  }

  /** Emergency: no longer published nor accepted (findPublished leaves `revoked` out). */
  async revoke(tx: Prisma.TransactionClient, kid: string, now: Date): Promise<void> {
    await tx.signingKey.update({ where: { kid }, data: { status: 'revoked', retiredAt: now, publishUntil: now } });
  }

  async activate(tx: Prisma.TransactionClient, kid: string, now: Date): Promise<void> {
    await tx.signingKey.update({ where: { kid }, data: { status: 'active', activatedAt: now } });
  }

  async retire(tx: Prisma.TransactionClient, kid: string, now: Date, publishUntil: Date): Promise<void> {
    await tx.signingKey.update({ where: { kid }, data: { status: 'retired', retiredAt: now, publishUntil } });
  }

  /** Retired keys no token can need any more. */
  async deleteExpired(now: Date): Promise<number> {
    const { count } = await this.prisma.signingKey.deleteMany({ where: { status: 'retired', publishUntil: { lte: now } } });
    return count;
  }

  /** Sealed private keys in kid order, for the master-key re-seal. */
  async sealedPage(afterKid: string | undefined, limit: number): Promise<SealedValue[]> {
    const rows = await this.prisma.signingKey.findMany({
      where: afterKid === undefined ? {} : { kid: { gt: afterKid } },
      orderBy: { kid: 'asc' },
      take: limit,
      select: { kid: true, privateSealed: true },
    });
    return rows.map((row) => ({ id: row.kid, sealed: row.privateSealed }));
  }

  /** Compare-and-set: false when the key changed or went since it was read. */
  async replaceSealed(kid: string, from: string, to: string): Promise<boolean> {
    const { count } = await this.prisma.signingKey.updateMany({ where: { kid, privateSealed: from }, data: { privateSealed: to } });
    return count === 1;
  }
}
