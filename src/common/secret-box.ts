import { createCipheriv, createDecipheriv, createHash, createSecretKey, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';

/** v1: `v1.iv.body.tag` (no key id: opened by trying each key); v2 names the master key it was sealed under. */
const LEGACY_VERSION = 'v1';
const VERSION = 'v2';

interface PurposeKey {
  id: string;
  /** made once: a raw Buffer would be turned into a key object on every seal and open */
  key: KeyObject;
}

/** The short public id of a master key: a hash prefix, so a sealed value says which key opens it. */
export function masterKeyId(masterKey: Buffer): string {
  return createHash('sha256').update('gatehouse:master-key-id').update(masterKey).digest('base64url').slice(0, 8);
}

/** Thrown when no configured master key (current or previous) opens a sealed value. */
export class SealedUnderUnknownKeyError extends Error {}

/**
 * AES-256-GCM sealing of secrets at rest (signing keys, TOTP secrets, replayable refresh
 * responses, OIDC states) under a key derived from MASTER_KEY per purpose, so one purpose's
 * ciphertext cannot be passed off as another's. Values sealed under a MASTER_KEY_PREVIOUS key
 * still open; `needsReseal` tells the re-seal which values to move to the current key.
 */
export class SecretBox {
  private readonly current: PurposeKey;
  private readonly all: PurposeKey[];

  constructor(masterKey: Buffer, purpose: string, previousKeys: readonly Buffer[] = []) {
    const derive = (key: Buffer): PurposeKey => ({
      id: masterKeyId(key),
      key: createSecretKey(Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), `gatehouse:${purpose}`, 32))),
    });
    this.current = derive(masterKey);
    this.all = [this.current, ...previousKeys.map(derive).filter((key) => key.id !== this.current.id)];
  }

  seal(plaintext: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.current.key, iv);
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return [VERSION, this.current.id, iv.toString('base64url'), body.toString('base64url'), cipher.getAuthTag().toString('base64url')].join(
      '.',
    );
  }

  open(sealed: string): string {
    const parts = sealed.split('.');
    if (parts[0] === VERSION && parts.length === 5) {
      const [, id, iv, body, tag] = parts as [string, string, string, string, string];
      const key = this.all.find((candidate) => candidate.id === id);
      if (key === undefined) {
        throw new SealedUnderUnknownKeyError('sealed under a master key that is neither MASTER_KEY nor in MASTER_KEY_PREVIOUS');
      }
      return decrypt(key.key, iv, body, tag);
    }
    if (parts[0] === LEGACY_VERSION && parts.length === 4) {
      const [, iv, body, tag] = parts as [string, string, string, string];
      for (const key of this.all) {
        try {
          return decrypt(key.key, iv, body, tag);
        } catch {
          // GCM authentication failed: not this key, try the next one
        }
      }
      throw new SealedUnderUnknownKeyError('sealed under a master key that is neither MASTER_KEY nor in MASTER_KEY_PREVIOUS');
    }
    throw new Error('sealed value has an unknown format');
  }

  /** True when the value is not sealed under the current MASTER_KEY. */
  needsReseal(sealed: string): boolean {
    return !sealed.startsWith(`${VERSION}.${this.current.id}.`);
  }

  /** The value moved to the current key (callers write it back with a compare-and-set). */
  reseal(sealed: string): string {
    return this.seal(this.open(sealed));
  }
}

function decrypt(key: KeyObject, iv: string, body: string, tag: string): string {
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
  decipher.setAuthTag(Buffer.from(tag, 'base64url'));
  return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
}
