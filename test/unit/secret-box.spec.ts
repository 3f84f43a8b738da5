import { createCipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SealedUnderUnknownKeyError, SecretBox } from '../../src/common/secret-box';

const OLD = Buffer.alloc(32, 1);
const NEW = Buffer.alloc(32, 2);

/** A value in the v1 format (no key id), as stores sealed before key ids existed hold them. */
function sealV1(masterKey: Buffer, purpose: string, plaintext: string): string {
  const key = Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), `gatehouse:${purpose}`, 32));
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return ['v1', iv.toString('base64url'), body.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
}

describe('SecretBox with a previous master key', () => {
  it('opens values sealed under a previous key and tells they need a re-seal', () => {
    const sealed = new SecretBox(OLD, 'p').seal('secret');
    const rotated = new SecretBox(NEW, 'p', [OLD]);
    expect(rotated.open(sealed)).toBe('secret');
    expect(rotated.needsReseal(sealed)).toBe(true);
    const moved = rotated.reseal(sealed);
    expect(rotated.needsReseal(moved)).toBe(false);
    expect(new SecretBox(NEW, 'p').open(moved)).toBe('secret');
  });

  it('opens legacy v1 values with whichever configured key fits', () => {
    const legacy = sealV1(OLD, 'p', 'legacy');
    expect(new SecretBox(NEW, 'p', [OLD]).open(legacy)).toBe('legacy');
    expect(new SecretBox(NEW, 'p', [OLD]).needsReseal(legacy)).toBe(true);
    expect(() => new SecretBox(NEW, 'p').open(legacy)).toThrow(SealedUnderUnknownKeyError);
  });

  it('refuses a value sealed under a key it does not have, and one sealed for another purpose', () => {
    expect(() => new SecretBox(NEW, 'p').open(new SecretBox(OLD, 'p').seal('x'))).toThrow(SealedUnderUnknownKeyError);
    expect(() => new SecretBox(OLD, 'q').open(new SecretBox(OLD, 'p').seal('x'))).toThrow();
  });
});
