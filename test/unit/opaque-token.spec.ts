import { describe, expect, it } from 'vitest';
import { hashToken, newOpaqueToken } from '../../src/common/opaque-token';

describe('opaque tokens', () => {
  it('are stored as the lower-case hex SHA-256 of their text, as every stored hash was made (FIPS 180-2 "abc" vector)', () => {
    expect(hashToken('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    // UTF-8, not latin1 or UTF-16
    expect(hashToken('\u00e9')).toBe('4a99557e4033c3539de2eb65472017cad5f9557f7a0625a09f1c3f6e2ba69c4c');
  });

  it('carry 256 bits as 43 URL-safe characters', () => {
    expect(newOpaqueToken()).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('never repeat across the random pool’s refills, and use every bit', () => {
    // 1,000 tokens cross the 128-token pool several times
    const tokens = Array.from({ length: 1000 }, () => newOpaqueToken());
    expect(new Set(tokens).size).toBe(tokens.length);
    for (const token of tokens) expect(Buffer.from(token, 'base64url')).toHaveLength(32);
    // each of the 256 bit positions is set in some tokens and clear in others
    const ones = new Array<number>(256).fill(0);
    for (const token of tokens) {
      const bytes = Buffer.from(token, 'base64url');
      for (let bit = 0; bit < 256; bit += 1) if ((bytes[bit >> 3]! >> (bit & 7)) & 1) ones[bit]! += 1;
    }
    expect(Math.min(...ones)).toBeGreaterThan(350);
    expect(Math.max(...ones)).toBeLessThan(650);
  });
});
