import { generateKeyPairSync, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { derToP1363, signEs256 } from '../../src/session/access-token.service';

describe('ES256 signatures (DER from node:crypto turned into JWS r‖s)', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });

  it('every one of 3,000 tokens verifies as IEEE P1363, whatever the lengths of r and s', () => {
    let failures = 0;
    for (let index = 0; index < 3000; index += 1) {
      const token = signEs256('eyJhbGciOiJFUzI1NiJ9', { sub: String(index) }, privateKey);
      const [header, payload, signature] = token.split('.');
      const raw = Buffer.from(signature!, 'base64url');
      if (raw.length !== 64 || !verify('sha256', Buffer.from(`${header}.${payload}`), { key: publicKey, dsaEncoding: 'ieee-p1363' }, raw)) {
        failures += 1;
      }
    }
    expect(failures).toBe(0);
  });

  it('pads a short r and drops the sign byte of a long s', () => {
    // r = 0x01 (one byte), s = 0x80 followed by 31 bytes (33 bytes with its leading zero)
    const s = Buffer.concat([Buffer.from([0x80]), Buffer.alloc(31, 0x11)]);
    const der = Buffer.concat([Buffer.from([0x30, 2 + 1 + 2 + 33, 0x02, 1, 0x01, 0x02, 33, 0x00]), s]);
    expect(derToP1363(der).toString('hex')).toBe('00'.repeat(31) + '01' + s.toString('hex'));
  });
});
