import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootAppOnTestDatabase, type TestApp } from '../support/app';
import { bootstrapAdminEnv, signinAdmin, signupUser } from '../support/auth-flows';
import { http, type HttpResult } from '../support/http';
import { servicesAvailable } from '../support/services';
import { settledStep, totpCode } from '../support/totp-codes';

const available = servicesAvailable({ postgres: true, nats: true });
const ADMIN_EMAIL = 'no-store-admin@example.com';
const ADMIN_PASSWORD = 'no store suite admin passphrase 3';

const noStore = (result: HttpResult, status: number) => {
  expect(result.status, result.text).toBe(status);
  expect(result.headers.get('cache-control')).toBe('no-store');
};

describe.skipIf(!available)('Cache-Control: no-store on every response carrying a token, code or secret', () => {
  let app: TestApp;
  let close: () => Promise<void>;

  beforeAll(async () => {
    ({ app, close } = await bootAppOnTestDatabase(bootstrapAdminEnv(ADMIN_EMAIL, ADMIN_PASSWORD)));
  });
  afterAll(() => close?.());

  it('sign-up, sign-in and refresh', async () => {
    const signup = await http(app.url, 'POST', '/v1/auth/signup', {
      json: { email: `no-store-${Date.now()}@example.com`, password: 'correct horse battery staple 42' },
    });
    noStore(signup, 201);
    const signin = await http(app.url, 'POST', '/v1/auth/signin', {
      json: { email: signup.json.user.email, password: 'correct horse battery staple 42' },
    });
    noStore(signin, 200);
    noStore(await http(app.url, 'POST', '/v1/auth/refresh', { json: { refresh_token: signin.json.refresh_token } }), 200);
  });

  it('TOTP enrol and confirm, recovery codes, and the MFA step of sign-in', async () => {
    const user = await signupUser(app.url);
    const enroll = await http(app.url, 'POST', '/v1/auth/mfa/totp/enroll', { token: user.accessToken });
    noStore(enroll, 200);
    const step = await settledStep();
    const confirm = await http(app.url, 'POST', '/v1/auth/mfa/totp/confirm', {
      token: user.accessToken,
      json: { code: totpCode(enroll.json.secret, step - 1) },
    });
    noStore(confirm, 200);
    const codes = await http(app.url, 'POST', '/v1/auth/mfa/recovery-codes', {
      token: user.accessToken,
      json: { code: totpCode(enroll.json.secret, step) },
    });
    noStore(codes, 200);
    const pending = await http(app.url, 'POST', '/v1/auth/signin', { json: { email: user.email, password: user.password } });
    noStore(pending, 200);
    const done = await http(app.url, 'POST', '/v1/auth/signin/mfa', {
      json: { mfa_token: pending.json.mfa_token, recovery_code: codes.json.recovery_codes[0] },
    });
    noStore(done, 200);
  });

  it('service-account create, rotate and the client-credentials token', async () => {
    const admin = await signinAdmin(app.url, ADMIN_EMAIL, ADMIN_PASSWORD);
    const created = await http(app.url, 'POST', '/admin/service-accounts', {
      token: admin,
      json: { name: 'no-store-sa' },
    });
    noStore(created, 201);
    const rotated = await http(app.url, 'POST', `/admin/service-accounts/${created.json.id}/rotate-secret`, {
      token: admin,
    });
    expect([200, 201]).toContain(rotated.status);
    expect(rotated.headers.get('cache-control')).toBe('no-store');
    noStore(
      await http(app.url, 'POST', '/v1/auth/token', {
        json: { grant_type: 'client_credentials', client_id: created.json.client_id, client_secret: rotated.json.client_secret },
      }),
      200,
    );
  });
});
