import { createHash, randomBytes } from 'node:crypto';

export const RECOVERY_CODE_COUNT = 10;
/** 10 random bytes = 80 bits per code (the issue asks for at least 64). */
const RECOVERY_CODE_BYTES = 10;
// Crockford's base32 alphabet, lower-case: no i, l, o, u to misread.
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

function base32(bytes: Buffer): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

/** Ten fresh codes, shown once, e.g. `7m3k-q9xd-2hbn-c4wa`. */
export function newRecoveryCodes(): string[] {
  return Array.from({ length: RECOVERY_CODE_COUNT }, () => base32(randomBytes(RECOVERY_CODE_BYTES)).match(/.{4}/g)!.join('-'));
}

/** What people type back: any case, with or without dashes and spaces. */
export function normalizeRecoveryCode(code: string): string {
  return code.toLowerCase().replace(/[\s-]/g, '');
}

/** Codes carry 80 random bits, so a plain SHA-256 is enough to keep them unrecoverable at rest. */
export function hashRecoveryCode(code: string): string {
  return createHash('sha256')
    .update(`gatehouse-recovery:${normalizeRecoveryCode(code)}`, 'utf8')
    .digest('hex');
}
