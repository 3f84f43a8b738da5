import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, type TestApp } from '../support/app';
import { ADMIN_EMAIL, ADMIN_PASSWORD, signinAdmin } from '../support/admin-fixtures';
import { signupUser } from '../support/auth-flows';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { http, uniqueEmail, type HttpResult } from '../support/http';
import { waitFor } from '../support/process';
import { NATS_URL, servicesAvailable } from '../support/services';
import { settledStep, totpCode } from '../support/totp-codes';

const available = servicesAvailable({ postgres: true, nats: true });

const expectProblem = (result: HttpResult, status: number, code: string) => {
  expect(result.status, result.text).toBe(status);
  expect(result.json).toMatchObject({ type: `urn:gatehouse:error:${code}`, status, code });
};

/**
 * CONTRACT §6 "Step-up" and §4 "Recent authentication", tried as an attacker holding only an
 * admin's password would: admin mutations need a second factor (ADMIN_MFA_REQUIRED) and the most
 * sensitive ones a recent authentication (ADMIN_REAUTH_MAX_AGE); POST /v1/auth/reauth lifts both.
 */
describe.skipIf(!available)('admin step-up', () => {
  let db: TestDatabase;
  let strict: TestApp;
  let relaxed: TestApp;

  beforeAll(async () => {
    db = await createTestDatabase();
    const env = {
      // rotates right after start: no wait for the next key's publication (CONTRACT §6)
      JWKS_MAX_AGE: '0',
      DATABASE_URL: db.url,
      NATS_URL,
      AUTH_IP_LIMIT: '100000',
      BOOTSTRAP_ADMIN_EMAIL: ADMIN_EMAIL,
      BOOTSTRAP_ADMIN_PASSWORD: ADMIN_PASSWORD,
    };
    // two replicas on one database: one requiring a second factor for admin mutations, one not
    strict = await bootApp({ ...env, ADMIN_MFA_REQUIRED: 'true' });
    relaxed = await bootApp({ ...env, ADMIN_MFA_REQUIRED: 'false' });
  });
  afterAll(async () => {
    await strict?.close();
    await relaxed?.close();
    await db?.drop();
  });

  const stepUpDenials = async (actorId: string) =>
    (
      await db.query<{ changes: { required: string; action: string } }>(
        `SELECT changes FROM audit_records WHERE action = 'auth.step_up_denied' AND actor_id = $1 ORDER BY seq`,
        [actorId],
      )
    ).rows.map((row) => row.changes);

  const ageSession = (sessionId: string, seconds: number) =>
    db.query(`UPDATE sessions SET authenticated_at = now() - make_interval(secs => $2) WHERE id = $1`, [sessionId, seconds]);

  it('refuses a password-only admin on disable and delete (403 mfa_required), audits it, and allows them after a reauth with a code', async () => {
    const root = await signinAdmin(relaxed.url);
    const admin = await signupUser(relaxed.url, uniqueEmail('mfa-admin'));
    const granted = await http(relaxed.url, 'POST', '/admin/assignments', {
      token: root,
      json: { principal_id: admin.userId, tenant_id: null, role_id: 'platform_admin' },
    });
    expect(granted.status, granted.text).toBe(201);
    const signin = await http(strict.url, 'POST', '/v1/auth/signin', { json: { email: admin.email, password: admin.password } });
    expect(signin.status, signin.text).toBe(200);
    const token = signin.json.access_token as string;
    const adminId = signin.json.user.id as string;
    const victim = await signupUser(strict.url, uniqueEmail('victim'));

    const disable = await http(strict.url, 'POST', `/admin/users/${victim.userId}/disable`, { token });
    expectProblem(disable, 403, 'mfa_required');
    expectProblem(await http(strict.url, 'DELETE', `/admin/users/${victim.userId}`, { token }), 403, 'mfa_required');
    expectProblem(await http(strict.url, 'POST', '/admin/tenants', { token, json: { id: 'stepup-t', name: 'T' } }), 403, 'mfa_required');
    // reads stay open; the victim is untouched
    expect((await http(strict.url, 'GET', `/admin/users/${victim.userId}`, { token })).json.status).toBe('active');
    expect(await stepUpDenials(adminId)).toEqual(
      expect.arrayContaining([
        { required: 'second_factor', action: 'POST /admin/users/:id/disable' },
        { required: 'second_factor', action: 'DELETE /admin/users/:id' },
      ]),
    );

    // the admin enrols TOTP (a fresh sign-in is recent enough), then proves it on this session
    const enroll = await http(strict.url, 'POST', '/v1/auth/mfa/totp/enroll', { token });
    expect(enroll.status, enroll.text).toBe(200);
    const step = await settledStep();
    const confirm = await http(strict.url, 'POST', '/v1/auth/mfa/totp/confirm', {
      token,
      json: { code: totpCode(enroll.json.secret, step - 1) },
    });
    expect(confirm.status, confirm.text).toBe(200);
    expectProblem(await http(strict.url, 'POST', `/admin/users/${victim.userId}/disable`, { token }), 403, 'mfa_required');
    expectProblem(await http(strict.url, 'POST', '/v1/auth/reauth', { token, json: { code: '000000' } }), 401, 'mfa_invalid');
    const reauth = await http(strict.url, 'POST', '/v1/auth/reauth', { token, json: { code: totpCode(enroll.json.secret, step) } });
    expect(reauth.status, reauth.text).toBe(204);

    const allowed = await http(strict.url, 'POST', `/admin/users/${victim.userId}/disable`, { token });
    expect(allowed.status, allowed.text).toBe(200);
    // delete needs a recent authentication too: an hour-old one is refused, a reauth lifts it
    await ageSession(signin.json.session_id, 3600);
    expectProblem(await http(strict.url, 'DELETE', `/admin/users/${victim.userId}`, { token }), 403, 'reauth_required');
    expect((await http(strict.url, 'POST', `/admin/users/${victim.userId}/enable`, { token })).status).toBe(200);
    expect((await http(strict.url, 'POST', '/v1/auth/reauth', { token, json: { password: admin.password } })).status).toBe(204);
    expect((await http(strict.url, 'DELETE', `/admin/users/${victim.userId}`, { token })).status).toBe(204);
    expect(await stepUpDenials(adminId)).toContainEqual({ required: 'recent_authentication', action: 'DELETE /admin/users/:id' });

    // without a second factor on the session, nothing but reauth lifts it: a refresh does not
    const refreshed = await http(strict.url, 'POST', '/v1/auth/refresh', { json: { refresh_token: signin.json.refresh_token } });
    expect(refreshed.status).toBe(200);
    await ageSession(signin.json.session_id, 3600);
    const other = await signupUser(strict.url, uniqueEmail('other'));
    expectProblem(
      await http(strict.url, 'PUT', `/admin/users/${other.userId}/password`, {
        token: refreshed.json.access_token,
        json: { password: 'a fresh admin-set password 913' },
      }),
      403,
      'reauth_required',
    );
  });

  it('needs a recent authentication for the most sensitive actions even without ADMIN_MFA_REQUIRED', async () => {
    const token = await signinAdmin(relaxed.url);
    const me = await http(relaxed.url, 'GET', '/v1/auth/me', { token });
    const sessions = await http(relaxed.url, 'GET', '/v1/auth/sessions', { token });
    const current = (sessions.json.items as Array<{ id: string; current: boolean }>).find((session) => session.current)!;
    const victim = await signupUser(relaxed.url, uniqueEmail('victim2'));
    await ageSession(current.id, 901);

    // ordinary mutations pass; the sensitive ones need a reauth
    expect((await http(relaxed.url, 'POST', `/admin/users/${victim.userId}/disable`, { token })).status).toBe(200);
    for (const [method, path, json] of [
      ['DELETE', `/admin/users/${victim.userId}`, undefined],
      ['PUT', `/admin/users/${victim.userId}/password`, { password: 'a fresh admin-set password 913' }],
      ['POST', `/admin/users/${victim.userId}/mfa/reset`, undefined],
      ['POST', `/admin/users/${victim.userId}/sessions/revoke`, undefined],
      ['POST', '/admin/keys/rotate', undefined],
      ['POST', '/admin/assignments', { principal_id: victim.userId, tenant_id: null, role_id: 'platform_admin' }],
      ['POST', '/admin/roles', { name: 'platform-ops', tenant_id: null, grants: ['iam.users.read'] }],
    ] as const) {
      expectProblem(await http(relaxed.url, method, path, { token, json }), 403, 'reauth_required');
    }
    expect(await stepUpDenials(me.json.user.id)).toContainEqual({
      required: 'recent_authentication',
      action: 'platform-scope assignment create',
    });
    expectProblem(
      await http(relaxed.url, 'POST', '/v1/auth/reauth', { token, json: { password: 'not the admin password at all' } }),
      401,
      'invalid_credentials',
    );
    expect((await http(relaxed.url, 'POST', '/v1/auth/reauth', { token, json: { password: ADMIN_PASSWORD } })).status).toBe(204);
    expect((await http(relaxed.url, 'POST', `/admin/users/${victim.userId}/sessions/revoke`, { token })).status).toBe(204);
    expect((await http(relaxed.url, 'DELETE', `/admin/users/${victim.userId}`, { token })).status).toBe(204);
  });

  it('refuses a service account unless it holds iam.step_up_exempt itself (platform_admin\'s "*" is not an exemption)', async () => {
    const token = await signinAdmin(relaxed.url);
    const created = await http(relaxed.url, 'POST', '/admin/service-accounts', { token, json: { name: 'robot' } });
    expect(created.status, created.text).toBe(201);
    const assign = (role: string) =>
      http(relaxed.url, 'POST', '/admin/assignments', {
        token,
        json: { principal_id: created.json.id, tenant_id: null, role_id: role },
      });
    expect((await assign('platform_admin')).status).toBe(201);
    const robotToken = async (base: string) => {
      const result = await http(base, 'POST', '/v1/auth/token', {
        json: { grant_type: 'client_credentials', client_id: created.json.client_id, client_secret: created.json.client_secret },
      });
      expect(result.status, result.text).toBe(200);
      return result.json.access_token as string;
    };
    const victim = await signupUser(relaxed.url, uniqueEmail('victim3'));
    const robotRelaxed = await robotToken(relaxed.url);
    const robotStrict = await robotToken(strict.url);

    expect((await http(relaxed.url, 'POST', `/admin/users/${victim.userId}/disable`, { token: robotRelaxed })).status).toBe(200);
    expectProblem(await http(relaxed.url, 'DELETE', `/admin/users/${victim.userId}`, { token: robotRelaxed }), 403, 'reauth_required');
    expectProblem(await http(strict.url, 'POST', `/admin/users/${victim.userId}/enable`, { token: robotStrict }), 403, 'mfa_required');
    expect(await stepUpDenials(created.json.id)).toHaveLength(2);

    const role = await http(relaxed.url, 'POST', '/admin/roles', {
      token,
      json: { name: 'automation', tenant_id: null, grants: ['iam.step_up_exempt'] },
    });
    expect(role.status, role.text).toBe(201);
    expect((await assign(role.json.id)).status).toBe(201);
    // the assignment was made through the other replica: it reaches this one over NATS (within
    // 1 s by the contract; ha.spec.ts times that), so ask until it has
    let enabled = 0;
    await waitFor(async () => {
      enabled = (await http(strict.url, 'POST', `/admin/users/${victim.userId}/enable`, { token: robotStrict })).status;
      return enabled !== 403;
    }, 5000);
    expect(enabled).toBe(200);
    expect((await http(strict.url, 'DELETE', `/admin/users/${victim.userId}`, { token: robotStrict })).status).toBe(204);
  });

  it('keeps the last platform admin: its own assignment, disabling and deleting it answer 409 conflict', async () => {
    const token = await signinAdmin(relaxed.url);
    const me = (await http(relaxed.url, 'GET', '/v1/auth/me', { token })).json.user.id as string;
    const mine = await http(relaxed.url, 'GET', `/admin/assignments?principal_id=${me}`, { token });
    const own = (mine.json.items as Array<{ id: string; role_id: string; tenant_id: string | null }>).find(
      (item) => item.role_id === 'platform_admin' && item.tenant_id === null,
    )!;
    // the service account of the previous test also holds platform_admin: remove it first
    const others = await db.query<{ id: string }>(
      `SELECT id FROM assignments WHERE role_id = 'platform_admin' AND tenant_id IS NULL AND principal_id <> $1`,
      [me],
    );
    for (const row of others.rows) {
      expect((await http(relaxed.url, 'DELETE', `/admin/assignments/${row.id}`, { token })).status).toBe(204);
    }
    expectProblem(await http(relaxed.url, 'DELETE', `/admin/assignments/${own.id}`, { token }), 409, 'conflict');
    expectProblem(await http(relaxed.url, 'POST', `/admin/users/${me}/disable`, { token }), 409, 'conflict');
    expectProblem(await http(relaxed.url, 'DELETE', `/admin/users/${me}`, { token }), 409, 'conflict');
    expect((await http(relaxed.url, 'GET', '/v1/auth/me', { token })).status).toBe(200);

    // with a second platform admin the first may step down
    const second = await signupUser(relaxed.url, uniqueEmail('second-admin'));
    expect(
      (
        await http(relaxed.url, 'POST', '/admin/assignments', {
          token,
          json: { principal_id: second.userId, tenant_id: null, role_id: 'platform_admin' },
        })
      ).status,
    ).toBe(201);
    expect((await http(relaxed.url, 'DELETE', `/admin/assignments/${own.id}`, { token })).status).toBe(204);
  });
});
