import { Injectable } from '@nestjs/common';
import { hashToken } from '../../common/opaque-token';
import type { Db } from '../../database/transaction';
import type { SealedValue } from '../../common/sealed-column';
import type { OidcState } from '../../generated/prisma/client';

/** Server-side OIDC authorization state, shared by every replica, found by the hash of `state`. */
@Injectable()
export class OidcStateRepository {
  async create(
    db: Db,
    input: { state: string; sealed: string; returnTo?: string; linkUserId?: string; ttlSeconds: number },
  ): Promise<void> {
    const now = Date.now();
    // housekeeping: states long past their end are of no use to anyone
    await db.oidcState.deleteMany({ where: { expiresAt: { lt: new Date(now - 3600_000) } } });
    await db.oidcState.create({
      data: {
        stateHash: hashToken(input.state),
        sealed: input.sealed,
        returnTo: input.returnTo ?? null,
        linkUserId: input.linkUserId ?? null,
        expiresAt: new Date(now + input.ttlSeconds * 1000),
      },
    });
  }

  /** Compare-and-set: the state's row for exactly one caller, before expiry; null otherwise. */
  async consume(db: Db, state: string): Promise<OidcState | null> {
    const stateHash = hashToken(state);
    const usedAt = new Date();
    const { count } = await db.oidcState.updateMany({ where: { stateHash, usedAt: null, expiresAt: { gt: usedAt } }, data: { usedAt } });
    if (count !== 1) return null;
    return db.oidcState.findUnique({ where: { stateHash } });
  }

  /** Undoes `consume` when the provider could not be reached, so the same callback may be retried. */
  async release(db: Db, id: string, usedAt: Date): Promise<void> {
    await db.oidcState.updateMany({ where: { id, usedAt }, data: { usedAt: null } });
  }

  /** Sealed PKCE verifiers and nonces in id order, for the master-key re-seal. */
  async sealedPage(db: Db, afterId: string | undefined, limit: number): Promise<SealedValue[]> {
    return db.oidcState.findMany({
      where: afterId === undefined ? {} : { id: { gt: afterId } },
      orderBy: { id: 'asc' },
      take: limit,
      select: { id: true, sealed: true },
    });
  }

  /** Compare-and-set: false when the state changed or went since it was read. */
  async replaceSealed(db: Db, id: string, from: string, to: string): Promise<boolean> {
    const { count } = await db.oidcState.updateMany({ where: { id, sealed: from }, data: { sealed: to } });
    return count === 1;
  }
}
