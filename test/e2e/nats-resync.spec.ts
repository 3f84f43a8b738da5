import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, type TestApp } from '../support/app';
import { ADMIN_EMAIL, ADMIN_PASSWORD, createTenant, inTenant, signinAdmin, userWithRole } from '../support/admin-fixtures';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { http } from '../support/http';
import { waitFor } from '../support/process';
import { NATS_URL, servicesAvailable } from '../support/services';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy';

const available = servicesAvailable({ postgres: true, nats: true });

/**
 * Events sent while a replica is cut off from NATS are lost; the replica must rebuild its
 * revocation set and drop its authorization cache when it reconnects.
 */
describe.skipIf(!available)('resynchronization after a NATS outage', () => {
  let db: TestDatabase;
  let a: TestApp;
  let b: TestApp;
  let natsProxy: TcpProxy;
  let root: string;

  beforeAll(async () => {
    db = await createTestDatabase();
    const nats = new URL(NATS_URL);
    natsProxy = await startTcpProxy(nats.hostname, Number(nats.port || 4222));
    const common = {
      DATABASE_URL: db.url,
      MASTER_KEY: Buffer.alloc(32, 3).toString('base64'),
      PUBLIC_URL: 'http://gatehouse.test',
      AUTH_IP_LIMIT: '100000',
      BOOTSTRAP_ADMIN_EMAIL: ADMIN_EMAIL,
      BOOTSTRAP_ADMIN_PASSWORD: ADMIN_PASSWORD,
    };
    a = await bootApp({ ...common, NATS_URL });
    b = await bootApp({ ...common, NATS_URL: `nats://127.0.0.1:${natsProxy.port}` });
    root = await signinAdmin(a.url);
    await createTenant(a.url, root, 'acme');
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await natsProxy?.close();
    await db?.drop();
  });

  it('refuses, after reconnecting, a session revoked and an assignment removed while it was cut off', async () => {
    const user = await userWithRole(a.url, root, 'acme', 'tenant_admin', 'resync');
    expect((await http(b.url, 'GET', '/admin/users', { token: user.accessToken, headers: inTenant('acme') })).status).toBe(200);
    const other = await http(a.url, 'POST', '/v1/auth/signin', { json: { email: user.email, password: user.password } });
    expect((await http(b.url, 'GET', '/v1/auth/me', { token: other.json.access_token })).status).toBe(200);

    natsProxy.cut();
    await waitFor(async () => (await http(b.url, 'GET', '/ready')).json?.checks?.nats === 'failing', 5000, 50);
    expect((await http(a.url, 'POST', '/v1/auth/signout', { token: other.json.access_token, json: {} })).status).toBe(204);
    expect((await http(a.url, 'DELETE', `/admin/assignments/${user.assignmentId}`, { token: root })).status).toBe(204);

    natsProxy.restore();
    await waitFor(async () => (await http(b.url, 'GET', '/ready')).json?.checks?.nats === 'ok', 10_000, 50);
    await waitFor(async () => (await http(b.url, 'GET', '/v1/auth/me', { token: other.json.access_token })).status === 401, 2000, 20);
    await waitFor(
      async () => (await http(b.url, 'GET', '/admin/users', { token: user.accessToken, headers: inTenant('acme') })).status === 403,
      2000,
      20,
    );
  });

  it('while cut off, learns a sign-out, a removed assignment and a disabled account from the database within a second', async () => {
    const user = await userWithRole(a.url, root, 'acme', 'tenant_admin', 'outage');
    const other = await http(a.url, 'POST', '/v1/auth/signin', { json: { email: user.email, password: user.password } });
    const victim = await userWithRole(a.url, root, 'acme', 'tenant_admin', 'outage-disabled');
    expect((await http(b.url, 'GET', '/v1/auth/me', { token: other.json.access_token })).status).toBe(200);
    expect((await http(b.url, 'GET', '/admin/users', { token: user.accessToken, headers: inTenant('acme') })).status).toBe(200);
    expect((await http(b.url, 'GET', '/v1/auth/me', { token: victim.accessToken })).status).toBe(200);

    natsProxy.cut();
    await waitFor(async () => (await http(b.url, 'GET', '/ready')).json?.checks?.nats === 'failing', 5000, 50);
    try {
      const measured: Record<string, number> = {};
      expect((await http(a.url, 'POST', '/v1/auth/signout', { token: other.json.access_token, json: {} })).status).toBe(204);
      measured.signout = await waitFor(
        async () => (await http(b.url, 'GET', '/v1/auth/me', { token: other.json.access_token })).status === 401,
        1000,
        20,
      );
      expect((await http(a.url, 'DELETE', `/admin/assignments/${user.assignmentId}`, { token: root })).status).toBe(204);
      measured.assignment = await waitFor(
        async () => (await http(b.url, 'GET', '/admin/users', { token: user.accessToken, headers: inTenant('acme') })).status === 403,
        1000,
        20,
      );
      expect((await http(a.url, 'POST', `/admin/users/${victim.userId}/disable`, { token: root })).status).toBe(200);
      measured.disable = await waitFor(
        async () => (await http(b.url, 'GET', '/v1/auth/me', { token: victim.accessToken })).status === 401,
        1000,
        20,
      );
      console.log(`[nats-resync] in force on the cut-off replica after (ms): ${JSON.stringify(measured)}`);
      expect(b.logs()).toContain('NATS unreachable: reading revocations and authorization changes from the database');
    } finally {
      natsProxy.restore();
    }
    await waitFor(async () => (await http(b.url, 'GET', '/ready')).json?.checks?.nats === 'ok', 10_000, 50);
    await waitFor(() => b.logs().includes('stopped reading them from the database'), 2000, 20);
  });
});
