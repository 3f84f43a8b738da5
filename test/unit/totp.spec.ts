import { describe, expect, it } from 'vitest';
import { matchTotp, otpauthUrl, type TotpAlgorithm } from '../../src/authn/mfa/totp';
import { hashRecoveryCode, newRecoveryCodes, normalizeRecoveryCode } from '../../src/authn/mfa/recovery-codes';
import { totpCode } from '../support/totp-codes';

// RFC 6238 Appendix B: seeds are the ASCII strings below, 8-digit codes, T0 = 0, X = 30.
const SEEDS: Record<TotpAlgorithm, Buffer> = {
  sha1: Buffer.from('12345678901234567890', 'ascii'),
  sha256: Buffer.from('12345678901234567890123456789012', 'ascii'),
  sha512: Buffer.from('1234567890123456789012345678901234567890123456789012345678901234', 'ascii'),
};
const VECTORS: Array<[number, string, TotpAlgorithm]> = [
  [59, '94287082', 'sha1'],
  [59, '46119246', 'sha256'],
  [59, '90693936', 'sha512'],
  [1111111109, '07081804', 'sha1'],
  [1111111109, '68084774', 'sha256'],
  [1111111109, '25091201', 'sha512'],
  [1111111111, '14050471', 'sha1'],
  [1111111111, '67062674', 'sha256'],
  [1111111111, '99943326', 'sha512'],
  [1234567890, '89005924', 'sha1'],
  [1234567890, '91819424', 'sha256'],
  [1234567890, '93441116', 'sha512'],
  [2000000000, '69279037', 'sha1'],
  [2000000000, '90698825', 'sha256'],
  [2000000000, '38618901', 'sha512'],
  [20000000000, '65353130', 'sha1'],
  [20000000000, '77737706', 'sha256'],
  [20000000000, '47863826', 'sha512'],
];

describe('TOTP verification (the path the service uses)', () => {
  it.each(VECTORS)('accepts the RFC 6238 Appendix B vector at T=%i: %s (%s)', async (time, code, algorithm) => {
    const step = await matchTotp({ secret: new Uint8Array(SEEDS[algorithm]), code, epochSeconds: time, algorithm, digits: 8 });
    expect(step).toBe(Math.floor(time / 30));
    // the test's own RFC 6238 implementation agrees, so the e2e codes computed with it are sound
    expect(totpCode(SEEDS[algorithm], Math.floor(time / 30), 8, algorithm)).toBe(code);
  });

  it('refuses a wrong code and a code of the wrong length', async () => {
    const secret = new Uint8Array(SEEDS.sha1);
    expect(await matchTotp({ secret, code: '94287083', epochSeconds: 59, digits: 8 })).toBeNull();
    expect(await matchTotp({ secret, code: '9428708', epochSeconds: 59, digits: 8 })).toBeNull();
    expect(await matchTotp({ secret, code: 'abcdefgh', epochSeconds: 59, digits: 8 })).toBeNull();
  });

  it('allows one step of drift either way, not two', async () => {
    const secret = new Uint8Array(SEEDS.sha1);
    const code = totpCode(SEEDS.sha1, 100);
    expect(await matchTotp({ secret, code, epochSeconds: 100 * 30 + 5 })).toBe(100);
    expect(await matchTotp({ secret, code, epochSeconds: 101 * 30 + 5 })).toBe(100);
    expect(await matchTotp({ secret, code, epochSeconds: 99 * 30 + 5 })).toBe(100);
    expect(await matchTotp({ secret, code, epochSeconds: 102 * 30 + 5 })).toBeNull();
    expect(await matchTotp({ secret, code, epochSeconds: 98 * 30 + 5 })).toBeNull();
  });

  it('refuses a step at or before the last accepted one (replay)', async () => {
    const secret = new Uint8Array(SEEDS.sha1);
    const code = totpCode(SEEDS.sha1, 100);
    expect(await matchTotp({ secret, code, epochSeconds: 100 * 30, afterTimeStep: 99 })).toBe(100);
    expect(await matchTotp({ secret, code, epochSeconds: 100 * 30, afterTimeStep: 100 })).toBeNull();
    expect(await matchTotp({ secret, code, epochSeconds: 100 * 30, afterTimeStep: 105 })).toBeNull();
  });

  it('builds an otpauth URL authenticator apps understand', () => {
    const url = new URL(otpauthUrl('Gatehouse', 'ada@example.com', 'JBSWY3DPEHPK3PXP'));
    expect(url.protocol).toBe('otpauth:');
    expect(url.host).toBe('totp');
    expect(decodeURIComponent(url.pathname)).toBe('/Gatehouse:ada@example.com');
    expect(Object.fromEntries(url.searchParams)).toEqual({
      secret: 'JBSWY3DPEHPK3PXP',
      issuer: 'Gatehouse',
      algorithm: 'SHA1',
      digits: '6',
      period: '30',
    });
  });
});

describe('recovery codes', () => {
  it('are ten distinct codes of 80 random bits', () => {
    const codes = newRecoveryCodes();
    expect(codes).toHaveLength(10);
    expect(new Set(codes).size).toBe(10);
    for (const code of codes) expect(code).toMatch(/^[0-9a-hjkmnp-tv-z]{4}(-[0-9a-hjkmnp-tv-z]{4}){3}$/);
  });

  it('hash the same whatever the case, dashes or spaces typed', () => {
    const [code] = newRecoveryCodes();
    expect(hashRecoveryCode(code!.toUpperCase().replace(/-/g, ' '))).toBe(hashRecoveryCode(code!));
    expect(normalizeRecoveryCode(' AB-cd ')).toBe('abcd');
  });
});
