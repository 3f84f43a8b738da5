import type { JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_EMAIL, ADMIN_PASSWORD, signinAdmin } from '../support/admin-fixtures';
import { bootApp, type TestApp } from '../support/app';
import { signupUser } from '../support/auth-flows';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { decodeJwtPart, http } from '../support/http';
import { waitFor } from '../support/process';
import { servicesAvailable } from '../support/services';

const available = servicesAvailable({ postgres: true });

describe.skipIf(!available)('signing keys: publication before signing, and emergency revocation (CONTRACT §6)', () => {
  let db: TestDatabase;
  let strict: TestApp;
  let quick: TestApp;

  const adminToken = (app: TestApp) => signinAdmin(app.url);
  const kids = async (app: TestApp) => ((await http(app.url, 'GET', '/.well-known/jwks.json')).json.keys as JWK[]).map((key) => key.kid);

  beforeAll(async () => {
    db = await createTestDatabase();
    const second = await createTestDatabase();
    const base = { BOOTSTRAP_ADMIN_EMAIL: ADMIN_EMAIL, BOOTSTRAP_ADMIN_PASSWORD: ADMIN_PASSWORD, AUTH_IP_LIMIT: '100000' };
    [strict, quick] = await Promise.all([
      bootApp({ ...base, DATABASE_URL: db.url }),
      bootApp({ ...base, DATABASE_URL: second.url, JWKS_MAX_AGE: '2' }),
    ]);
    afterAll(() => second.drop());
  });
  afterAll(async () => {
    await Promise.all([strict?.close(), quick?.close()]);
    await db?.drop();
  });

  it('publishes the JWKS for JWKS_MAX_AGE and refuses to let a key sign before it was published that long', async () => {
    const jwks = await http(strict.url, 'GET', '/.well-known/jwks.json');
    expect(jwks.headers.get('cache-control')).toBe('public, max-age=300');
    const refused = await http(strict.url, 'POST', '/admin/keys/rotate', { token: await adminToken(strict) });
    expect(refused.status, refused.text).toBe(409);
    expect(refused.json.code).toBe('conflict');
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(300);
  });

  it('rotates once the next key is old enough; a second rotation right after waits again', async () => {
    const token = await adminToken(quick);
    let rotated = await http(quick.url, 'POST', '/admin/keys/rotate', { token });
    await waitFor(
      async () => {
        rotated = await http(quick.url, 'POST', '/admin/keys/rotate', { token });
        return rotated.status === 200;
      },
      6000,
      200,
    );
    const again = await http(quick.url, 'POST', '/admin/keys/rotate', { token: await adminToken(quick) });
    expect(again.status, again.text).toBe(409);
    expect(Number(again.headers.get('retry-after'))).toBeLessThanOrEqual(2);
  });

  it('revokes a key at once: gone from the JWKS, its tokens refused even if verified before, signing moves on', async () => {
    const root = await adminToken(strict);
    const user = await signupUser(strict.url);
    // verified once (and so cached) before the revocation
    expect((await http(strict.url, 'GET', '/v1/auth/me', { token: user.accessToken })).status).toBe(200);
    const oldKid = decodeJwtPart(user.accessToken, 0).kid as string;
    const revoked = await http(strict.url, 'POST', `/admin/keys/${oldKid}/revoke`, { token: root });
    expect(revoked.status, revoked.text).toBe(200);
    expect(revoked.json.revoked_kid).toBe(oldKid);
    expect(revoked.json.active_kid).not.toBe(oldKid);
    expect(await kids(strict)).not.toContain(oldKid);
    expect((await http(strict.url, 'GET', '/v1/auth/me', { token: user.accessToken })).status).toBe(401);
    const fresh = await http(strict.url, 'POST', '/v1/auth/signin', { json: { email: user.email, password: user.password } });
    expect(decodeJwtPart(fresh.json.access_token, 0).kid).toBe(revoked.json.active_kid);
    expect((await http(strict.url, 'GET', '/v1/auth/me', { token: fresh.json.access_token })).status).toBe(200);
    expect((await http(strict.url, 'POST', `/admin/keys/${oldKid}/revoke`, { token: await adminToken(strict) })).status).toBe(404);
    const audit = await db.query(`SELECT target_id FROM audit_records WHERE action = 'platform.keys.revoke'`);
    expect(audit.rows).toEqual([{ target_id: oldKid }]);
  });
});
