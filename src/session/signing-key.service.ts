import { createPrivateKey, type KeyObject } from 'node:crypto';
import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import type { Logger } from 'pino';
import { AppError } from '../common/app-error';
import { SealedUnderUnknownKeyError, SecretBox } from '../common/secret-box';
import { APP_CONFIG, ConfigError, type AppConfig } from '../config/config';
import type { Prisma } from '../generated/prisma/client';
import { ClusterEventBus } from '../messaging/cluster-event-bus';
import { LOGGER } from '../observability/logger';
import { SigningKeyRepository, type NewSigningKey } from './signing-key.repository';

/** The purpose under which private signing keys are sealed with MASTER_KEY. */
export const SIGNING_KEY_PURPOSE = 'signing-keys';

export const SIGNING_ALGORITHM = 'ES256';
/** Automatic rotation period of the active signing key. */
export const KEY_ROTATION_INTERVAL_MS = 30 * 24 * 3600 * 1000;
/** Longest token any key signs besides access tokens: the 60 s internal upstream token. */
const INTERNAL_TOKEN_TTL_S = 60;
/** Verification leeway on exp (CONTRACT §3: 30 s at most). */
export const CLOCK_TOLERANCE_S = 30;
const RELOAD_INTERVAL_MS = 60_000;
const UNKNOWN_KID_RELOAD_MIN_GAP_MS = 5_000;

/** The active key: as a WebCrypto key for jose, and as a node:crypto KeyObject made once for the access-token signer. */
export interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  keyObject: KeyObject;
}

interface LoadedKey {
  kid: string;
  status: string;
  publicKey: CryptoKey;
  publicJwk: JWK;
}

/**
 * The ES256 key ring shared by every replica. There is always an active key (signs) and a
 * next key (published, not yet signing), so a rotation only promotes a key every JWKS
 * consumer has already seen; a retired key stays published until its last token expired.
 */
@Injectable()
export class SigningKeyService implements OnModuleInit, OnApplicationShutdown {
  private readonly box: SecretBox;
  private keys = new Map<string, LoadedKey>();
  private signing: SigningKey | undefined;
  private jwks: { keys: JWK[] } = { keys: [] };
  private timer: NodeJS.Timeout | undefined;
  private lastUnknownKidReload = 0;

  constructor(
    private readonly repository: SigningKeyRepository,
    private readonly events: ClusterEventBus,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.box = new SecretBox(config.MASTER_KEY, SIGNING_KEY_PURPOSE, config.MASTER_KEY_PREVIOUS);
  }

  async onModuleInit(): Promise<void> {
    this.events.on('keys.changed', () => this.reload());
    await this.repository.withLockedRing(async (tx) => {
      const now = new Date();
      if ((await this.repository.findByStatus(tx, 'active')) === null) {
        await this.repository.insert(tx, await this.generate(), 'active', now);
        this.logger.info('created the first signing key');
      }
      if ((await this.repository.findByStatus(tx, 'next')) === null) {
        await this.repository.insert(tx, await this.generate(), 'next', now);
      }
    });
    await this.reload();
    // Safety net besides the keys.changed event: another replica's automatic rotation.
    this.timer = setInterval(() => void this.tick(), RELOAD_INTERVAL_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  /** The published JWKS: public members only. */
  publicJwks(): { keys: JWK[] } {
    return this.jwks;
  }

  signingKey(): SigningKey {
    if (this.signing === undefined) throw new Error('no active signing key loaded');
    return this.signing;
  }

  /** Public key for a kid, reloading the ring (rate-limited) when the kid is unknown. */
  async verificationKey(kid: string | undefined): Promise<CryptoKey | undefined> {
    if (kid === undefined) return undefined;
    const known = this.keys.get(kid);
    if (known !== undefined) return known.publicKey;
    if (Date.now() - this.lastUnknownKidReload < UNKNOWN_KID_RELOAD_MIN_GAP_MS) return undefined;
    this.lastUnknownKidReload = Date.now();
    await this.reload();
    return this.keys.get(kid)?.publicKey;
  }

  /**
   * Promotes next → active, retires the active key, creates a new next key. The next key must
   * have been published for JWKS_MAX_AGE first (CONTRACT §6): a verifier that fetched the JWKS
   * just before it appeared holds a copy that long, and would refuse tokens it signs; earlier
   * → 409 `conflict` with Retry-After.
   */
  async rotate(
    record?: (tx: Prisma.TransactionClient, change: { retired: string; activated: string }) => Promise<unknown>,
  ): Promise<{ activated: string; retired: string }> {
    const publishMs = this.config.JWKS_MAX_AGE * 1000;
    const result = await this.repository.withLockedRing(
      async (tx): Promise<{ activated: string; retired: string } | { waitMs: number }> => {
        const now = new Date();
        const active = await this.repository.findByStatus(tx, 'active');
        const next = await this.repository.findByStatus(tx, 'next');
        if (next === null) {
          // published from now on; it may sign once JWKS caches have seen it
          await this.repository.insert(tx, await this.generate(), 'next', now);
          if (publishMs > 0) return { waitMs: publishMs };
        } else if (now.getTime() - next.createdAt.getTime() < publishMs) {
          return { waitMs: publishMs - (now.getTime() - next.createdAt.getTime()) };
        }
        const nextKid = next?.kid ?? (await this.repository.findByStatus(tx, 'next'))!.kid;
        const publishUntil = new Date(
          now.getTime() + (Math.max(this.config.ACCESS_TOKEN_TTL, INTERNAL_TOKEN_TTL_S) + CLOCK_TOLERANCE_S + 60) * 1000,
        );
        if (active !== null) await this.repository.retire(tx, active.kid, now, publishUntil);
        await this.repository.activate(tx, nextKid, now);
        await this.repository.insert(tx, await this.generate(), 'next', now);
        const change = { retired: active?.kid ?? '', activated: nextKid };
        if (record !== undefined) await record(tx, change);
        return change;
      },
    );
    if ('waitMs' in result) {
      const seconds = Math.max(1, Math.ceil(result.waitMs / 1000));
      throw new AppError('conflict', {
        detail: `the next signing key has been published for less than JWKS_MAX_AGE; retry in ${seconds} s`,
        headers: { 'retry-after': String(seconds) },
      });
    }
    this.logger.info(result, 'signing keys rotated');
    await this.events.publish('keys.changed', {});
    return result;
  }

  /**
   * Emergency (CONTRACT §6): stop publishing and accepting `kid` now. Revoking the active key
   * promotes the next one at once (without waiting for JWKS_MAX_AGE: tokens signed with a
   * compromised key are worse than a verifier briefly missing the new one).
   */
  async revoke(
    kid: string,
    record?: (tx: Prisma.TransactionClient, change: { revoked: string; active: string }) => Promise<unknown>,
  ): Promise<{ revoked: string; active: string }> {
    const result = await this.repository.withLockedRing(async (tx) => {
      const now = new Date();
      const key = await this.repository.findByKid(tx, kid);
      if (key === null || key.status === 'revoked') throw new AppError('not_found', { detail: 'no such published signing key' });
      await this.repository.revoke(tx, kid, now);
      let active = key.status === 'active' ? undefined : (await this.repository.findByStatus(tx, 'active'))?.kid;
      if (active === undefined) {
        const next = await this.repository.findByStatus(tx, 'next');
        if (next !== null && next.kid !== kid) {
          await this.repository.activate(tx, next.kid, now);
          active = next.kid;
        } else {
          const created = await this.generate();
          await this.repository.insert(tx, created, 'active', now);
          active = created.kid;
        }
      }
      if ((await this.repository.findByStatus(tx, 'next')) === null) await this.repository.insert(tx, await this.generate(), 'next', now);
      const change = { revoked: kid, active };
      if (record !== undefined) await record(tx, change);
      return change;
    });
    this.logger.warn(result, 'signing key revoked');
    await this.reload();
    await this.events.publish('keys.changed', {});
    return result;
  }

  /** Whether `kid` is still published (a revoked key's tokens must stop at once, cached or not). */
  isPublished(kid: string): boolean {
    return this.keys.has(kid);
  }

  private async tick(): Promise<void> {
    try {
      const active = this.signing === undefined ? undefined : this.keys.get(this.signing.kid);
      const activatedAt = active === undefined ? undefined : this.activatedAt.get(active.kid);
      if (activatedAt !== undefined && Date.now() - activatedAt > KEY_ROTATION_INTERVAL_MS) {
        await this.rotateIfStillDue();
      }
      await this.repository.deleteExpired(new Date());
      await this.reload();
    } catch (error) {
      this.logger.warn({ err: error }, 'signing key maintenance failed');
    }
  }

  private readonly activatedAt = new Map<string, number>();

  /** Both replicas may find rotation due; the one that gets the lock second sees a fresh key and stops. */
  private async rotateIfStillDue(): Promise<void> {
    const due = await this.repository.withLockedRing(async (tx) => {
      const active = await this.repository.findByStatus(tx, 'active');
      return (
        active?.activatedAt === null ||
        active?.activatedAt === undefined ||
        Date.now() - active.activatedAt.getTime() > KEY_ROTATION_INTERVAL_MS
      );
    });
    if (!due) return;
    try {
      await this.rotate();
    } catch (error) {
      // the next key is not old enough yet: the next tick tries again
      if (!(error instanceof AppError && error.code === 'conflict')) throw error;
    }
  }

  private async reload(): Promise<void> {
    const rows = await this.repository.findPublished(new Date());
    const keys = new Map<string, LoadedKey>();
    let signing: SigningKey | undefined;
    for (const row of rows) {
      const publicJwk = row.publicJwk as JWK;
      const cached = this.keys.get(row.kid);
      const publicKey = cached?.publicKey ?? ((await importJWK(publicJwk, SIGNING_ALGORITHM)) as CryptoKey);
      keys.set(row.kid, { kid: row.kid, status: row.status, publicKey, publicJwk });
      if (row.activatedAt !== null) this.activatedAt.set(row.kid, row.activatedAt.getTime());
      if (row.status === 'active') {
        if (this.signing?.kid === row.kid) {
          signing = this.signing;
        } else {
          const privateJwk = JSON.parse(this.openPrivateKey(row.privateSealed)) as JWK;
          signing = {
            kid: row.kid,
            privateKey: (await importJWK(privateJwk, SIGNING_ALGORITHM)) as CryptoKey,
            keyObject: createPrivateKey({ key: privateJwk as import('node:crypto').JsonWebKey, format: 'jwk' }),
          };
        }
      }
    }
    this.keys = keys;
    if (signing !== undefined) this.signing = signing;
    this.jwks = { keys: [...keys.values()].map((key) => ({ ...key.publicJwk })) };
  }

  /** A MASTER_KEY that cannot open the key ring is a configuration error: it stops start-up with one line. */
  private openPrivateKey(sealed: string): string {
    try {
      return this.box.open(sealed);
    } catch (error) {
      if (error instanceof SealedUnderUnknownKeyError) {
        throw new ConfigError(
          'config: MASTER_KEY: cannot open the stored signing keys; set MASTER_KEY_PREVIOUS to the key they were sealed with',
        );
      }
      throw error;
    }
  }

  private async generate(): Promise<NewSigningKey> {
    const { publicKey, privateKey } = await generateKeyPair(SIGNING_ALGORITHM, { extractable: true });
    const publicJwk = await exportJWK(publicKey);
    const kid = await calculateJwkThumbprint(publicJwk);
    const privateJwk = await exportJWK(privateKey);
    return {
      kid,
      publicJwk: { kty: publicJwk.kty, crv: publicJwk.crv, x: publicJwk.x, y: publicJwk.y, kid, alg: SIGNING_ALGORITHM, use: 'sig' },
      privateSealed: this.box.seal(JSON.stringify(privateJwk)),
    };
  }
}
