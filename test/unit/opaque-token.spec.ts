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
});
