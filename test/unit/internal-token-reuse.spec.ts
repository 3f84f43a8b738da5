import { generateKeyPair } from 'jose';
import { describe, expect, it } from 'vitest';
import type { AppConfig } from '../../src/config/config';
import { InternalTokenService } from '../../src/proxy/internal-token.service';
import type { Principal } from '../../src/session/principal';
import type { SigningKeyService } from '../../src/session/signing-key.service';

async function service() {
  const { privateKey } = await generateKeyPair('ES256');
  const keys = { current: { kid: 'k1', privateKey } };
  const signing = { signingKey: () => keys.current } as unknown as SigningKeyService;
  const tokens = new InternalTokenService(signing, { PUBLIC_URL: 'https://gatehouse.test' } as AppConfig);
  return { tokens, keys };
}

const alice = (): Principal => ({ id: '0190a4c6-0000-7000-8000-000000000001', type: 'user', amr: ['pwd'] });

describe('InternalTokenService reuse without waiting (mintNow)', () => {
  it('answers the token minted for the same caller, tenant and kind, whether asked with the same principal object or an equal one', async () => {
    const { tokens } = await service();
    const principal = alice();
    expect(tokens.mintNow('projection', principal, 'acme')).toBeUndefined();
    const token = await tokens.mint('projection', principal, 'acme');
    expect(tokens.mintNow('projection', principal, 'acme')).toBe(token);
    expect(tokens.mintNow('projection', alice(), 'acme')).toBe(token);
    expect(tokens.mintNow('projection', principal, 'acme')).toBe(token);
  });

  it('signs once for the calls that ask while a token is being signed, and again once it is signed', async () => {
    const { tokens } = await service();
    const [first, second, third] = await Promise.all([
      tokens.mint('aggregate', alice(), 'acme'),
      tokens.mint('aggregate', alice(), 'acme'),
      tokens.mint('aggregate', alice(), 'globex'),
    ]);
    expect(second).toBe(first);
    expect(third).not.toBe(first);
    expect(await tokens.mint('aggregate', alice(), 'acme')).toBe(first);
  });

  it('never answers a token minted for another tenant, kind, principal or signing key', async () => {
    const { tokens, keys } = await service();
    const principal = alice();
    await tokens.mint('projection', principal, 'acme');
    expect(tokens.mintNow('projection', principal, 'globex')).toBeUndefined();
    expect(tokens.mintNow('projection', principal, undefined)).toBeUndefined();
    expect(tokens.mintNow('runner', principal, 'acme')).toBeUndefined();
    expect(tokens.mintNow('projection', { ...principal, id: '0190a4c6-0000-7000-8000-000000000002' }, 'acme')).toBeUndefined();
    const other = await generateKeyPair('ES256');
    keys.current = { kid: 'k2', privateKey: other.privateKey };
    expect(tokens.mintNow('projection', principal, 'acme')).toBeUndefined();
  });
});
