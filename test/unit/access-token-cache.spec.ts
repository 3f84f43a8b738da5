import { generateKeyPairSync, webcrypto } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AccessTokenService, verifiedKey } from '../../src/session/access-token.service';
import type { AppConfig } from '../../src/config/config';
import type { SigningKeyService } from '../../src/session/signing-key.service';

describe('access-token verification cache (keyed by the token end, the whole token compared)', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const keys = {
    signingKey: () => ({ kid: 'k1', keyObject: privateKey }),
    verificationKey: async (kid: string | undefined) =>
      kid === 'k1'
        ? webcrypto.subtle.importKey(
            'spki',
            publicKey.export({ type: 'spki', format: 'der' }),
            { name: 'ECDSA', namedCurve: 'P-256' },
            false,
            ['verify'],
          )
        : undefined,
    isPublished: (kid: string) => kid === 'k1',
  } as unknown as SigningKeyService;
  const config = { PUBLIC_URL: 'https://gatehouse.test', ACCESS_TOKEN_TTL: 900 } as AppConfig;
  const service = new AccessTokenService(keys, config);

  it('answers a token verified before from memory, and never a different token sharing its end', async () => {
    const { token } = await service.mint({ sub: 'u-1', sid: 's-1', amr: ['pwd'], principalType: 'user' });
    expect(service.verifiedNow(token)).toBeUndefined();
    expect((await service.verify(token)).sub).toBe('u-1');
    expect(service.verifiedNow(token)?.sub).toBe('u-1');
    // the same string built afresh (as every request's header is) still finds it
    expect(service.verifiedNow(Buffer.from(token).toString('latin1'))?.sub).toBe('u-1');

    // another payload under the same signature: same cache key, not the same token
    const [header, , signature] = token.split('.');
    const forgedPayload = Buffer.from(JSON.stringify({ sub: 'admin', sid: 's-1', amr: ['pwd'], principal_type: 'user' })).toString(
      'base64url',
    );
    const forged = `${header}.${forgedPayload}.${signature}`;
    expect(verifiedKey(forged)).toBe(verifiedKey(token));
    expect(service.verifiedNow(forged)).toBeUndefined();
    await expect(service.verify(forged)).rejects.toMatchObject({ code: 'invalid_token' });
    // the forged one, refused, did not push the genuine one out
    expect(service.verifiedNow(token)?.sub).toBe('u-1');
  });
});
