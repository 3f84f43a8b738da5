import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { userWithRole } from '../support/admin-fixtures';
import { bootApp, type TestApp } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { binary, startCaddy, startNginx, type EdgeProcess } from '../support/edge-proxies';
import { fakeHttp, type FakeHttp } from '../support/fake-upstreams';
import { http as request } from '../support/http';
import { freePort, waitFor } from '../support/process';
import { servicesAvailable } from '../support/services';

const available = servicesAvailable({ postgres: true });
const proxiesInstalled = binary('nginx') !== undefined && binary('caddy') !== undefined;
if (!proxiesInstalled) {
  if (process.env.REQUIRE_SERVICES === '1') throw new Error('nginx and caddy must be installed (.ci/run installs them)');
  console.warn('skipping forward-auth proxy suite: nginx or caddy not installed (apt-get install -y nginx caddy)');
}
const MASTER_KEY = Buffer.alloc(32, 52).toString('base64');
const ADMIN_EMAIL = 'edge-root@example.com';
const ADMIN_PASSWORD = 'bootstrap admin password 123';

const RULES = [
  { path_prefix: '/orders/public', public: true },
  { path_prefix: '/orders/ops', right: 'platform.routing.read', tenant: 'none' },
  { path_prefix: '/orders/flip', right: 'queries.run' },
  { path_prefix: '/orders/items', methods: ['GET', 'HEAD'], right: 'queries.run', resource: '{1}' },
  { path_prefix: '/orders/items', right: 'commands.submit', resource: '{1}' },
];

/** A stand-in decision service that refuses everything with a fixed status (for the edge's error mapping). */
async function refusingDecisions(status: number, headers: Record<string, string>): Promise<{ port: number; stop(): Promise<void> }> {
  const server = http.createServer((incoming, response) => {
    incoming.resume();
    response.writeHead(status, { 'content-type': 'application/problem+json', 'x-request-id': 'req-fake', ...headers });
    response.end('{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe.skipIf(!available || !proxiesInstalled)('forward auth through real nginx and Caddy (CONTRACT §10)', () => {
  let db: TestDatabase;
  let app: TestApp;
  let service: FakeHttp;
  let nginx: EdgeProcess;
  let caddy: EdgeProcess;
  let adminToken: string;
  let jwks: ReturnType<typeof createLocalJWKSet>;

  beforeAll(async () => {
    [db, service] = await Promise.all([createTestDatabase(), fakeHttp('orders-service')]);
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gh-edge-')), 'routing.json');
    fs.writeFileSync(file, JSON.stringify({ forward: { rules: RULES } }));
    app = await bootApp({
      DATABASE_URL: db.url,
      MASTER_KEY,
      BOOTSTRAP_ADMIN_EMAIL: ADMIN_EMAIL,
      BOOTSTRAP_ADMIN_PASSWORD: ADMIN_PASSWORD,
      AUTH_IP_LIMIT: '100000',
      ROUTING_FILE: file,
    });
    const gatehousePort = Number(new URL(app.url).port);
    nginx = await startNginx({ gatehousePort, servicePort: service.port });
    caddy = await startCaddy({ gatehousePort, servicePort: service.port });
    const signin = await request(app.url, 'POST', '/v1/auth/signin', { json: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } });
    expect(signin.status, signin.text).toBe(200);
    adminToken = signin.json.access_token;
    for (const id of ['acme', 'beta']) {
      expect((await request(app.url, 'POST', '/admin/tenants', { token: adminToken, json: { id, name: id } })).status).toBe(201);
    }
    jwks = createLocalJWKSet((await request(app.url, 'GET', '/.well-known/jwks.json')).json as JSONWebKeySet);
  });
  afterAll(async () => {
    await Promise.all([nginx?.stop(), caddy?.stop()]);
    await app?.close();
    await service?.stop();
    await db?.drop();
  });

  const edges = () =>
    [
      ['nginx (1 s decision cache)', nginx, 2000],
      ['Caddy', caddy, 1000],
    ] as const;

  /** The service's newest recorded call for this URL after `before` calls. */
  const callTo = (before: number, url: string) => service.calls.slice(before).find((call) => call.url === url);

  for (const [name, index] of [
    ['nginx (1 s decision cache)', 0],
    ['Caddy', 1],
  ] as const) {
    describe(name, () => {
      const edge = () => edges()[index][1];
      const revocationBound = () => edges()[index][2];
      const via = (method: string, uri: string, headers: Record<string, string> = {}, token?: string) =>
        request(`http://127.0.0.1:${edge().port}`, method, uri, { token, headers });

      it('an allowed call reaches the service with the identity headers and an internal token the JWKS verifies', async () => {
        const member = await userWithRole(app.url, adminToken, 'acme', 'tenant_member', `edge-member-${index}`);
        const before = service.calls.length;
        const url = `/orders/items/42?n=${index}`;
        const result = await via(
          'GET',
          url,
          { 'x-tenant-id': 'acme', 'x-auth-principal-id': 'spoofed', 'x-auth-principal-type': 'service_account' },
          member.accessToken,
        );
        expect(result.status, result.text).toBe(200);
        expect(result.json.served_by).toBe('orders-service');
        const call = callTo(before, url)!;
        expect(call.headers['x-auth-principal-id']).toBe(member.userId);
        expect(call.headers['x-auth-principal-type']).toBe('user');
        expect(call.headers['x-tenant-id']).toBe('acme');
        const token = String(call.headers.authorization).replace(/^Bearer /, '');
        expect(token).not.toBe(member.accessToken);
        const { payload } = await jwtVerify(token, jwks, {
          algorithms: ['ES256'],
          audience: 'forward',
          issuer: app.gatehouse.config.PUBLIC_URL,
        });
        expect(payload).toMatchObject({ sub: member.userId, tenant_id: 'acme' });
        // a write goes through with the other rule
        const write = await via('POST', '/orders/items/42', { 'x-tenant-id': 'acme' }, member.accessToken);
        expect(write.status, write.text).toBe(200);
      });

      it('no token → 401 with WWW-Authenticate from the proxy; the service is not called', async () => {
        const before = service.calls.length;
        const result = await via('GET', '/orders/items/1', { 'x-tenant-id': 'acme' });
        expect(result.status).toBe(401);
        expect(result.headers.get('www-authenticate')).toBe('Bearer');
        expect(result.json.code).toBe('unauthenticated');
        const bad = await via('GET', '/orders/items/1', { 'x-tenant-id': 'acme' }, `${adminToken}x`);
        expect(bad.status).toBe(401);
        expect(bad.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
        expect(service.calls.length).toBe(before);
      });

      it('no right → 403; tenant rules: another tenant → 403, no x-tenant-id → 400 tenant_required', async () => {
        const viewer = await userWithRole(app.url, adminToken, 'acme', 'tenant_viewer', `edge-viewer-${index}`);
        const before = service.calls.length;
        const write = await via('POST', '/orders/items/9', { 'x-tenant-id': 'acme' }, viewer.accessToken);
        expect(write.status).toBe(403);
        expect(write.json.code).toBe('forbidden');
        const other = await via('GET', '/orders/items/9', { 'x-tenant-id': 'beta' }, viewer.accessToken);
        expect(other.status).toBe(403);
        expect(other.json.code).toBe('tenant_forbidden');
        const none = await via('GET', '/orders/items/9', {}, viewer.accessToken);
        expect(none.status).toBe(400);
        expect(none.json.code).toBe('tenant_required');
        expect(service.calls.length).toBe(before);
        // a platform-scope rule ignores the tenant and passes none on
        const ops = await via('GET', '/orders/ops/status', { 'x-tenant-id': 'beta' }, adminToken);
        expect(ops.status, ops.text).toBe(200);
        const call = callTo(before, '/orders/ops/status')!;
        // nginx drops an empty header, Caddy sends it empty: either way no tenant the client named
        expect(call.headers['x-tenant-id'] ?? '').toBe('');
      });

      it('a public rule passes without credentials; an unmatched path → 403; a traversal → 400', async () => {
        const before = service.calls.length;
        const open = await via('GET', `/orders/public/logo-${index}.png`);
        expect(open.status, open.text).toBe(200);
        const call = callTo(before, `/orders/public/logo-${index}.png`)!;
        expect(call.headers['x-auth-principal-id'] ?? '').toBe('');
        expect(call.headers.authorization ?? '').toBe('');
        // and the client's own token never reaches the service
        const withToken = await via('GET', `/orders/public/token-${index}.png`, {}, adminToken);
        expect(withToken.status).toBe(200);
        expect(callTo(before, `/orders/public/token-${index}.png`)!.headers.authorization ?? '').toBe('');
        const unmatched = await via('GET', '/orders/unknown', {}, adminToken);
        expect(unmatched.status).toBe(403);
        expect(unmatched.json.code).toBe('forbidden');
        // the proxy resolves it to /orders/ops; Gatehouse judges the raw URI and refuses it
        const traversal = await via('GET', '/orders/public/x%2F..%2F..%2Fops', {}, adminToken);
        expect(traversal.status).toBe(400);
        expect(traversal.json.code).toBe('validation_failed');
      });

      it('a signed-out session is refused through the proxy within the bound (nginx caching: 2 s; Caddy: 1 s)', async () => {
        const member = await userWithRole(app.url, adminToken, 'acme', 'tenant_member', `edge-signout-${index}`);
        const call = () => via('GET', '/orders/items/7', { 'x-tenant-id': 'acme' }, member.accessToken);
        expect((await call()).status).toBe(200);
        // a second call within the second is what nginx serves from its decision cache
        expect((await call()).status).toBe(200);
        const out = await request(app.url, 'POST', '/v1/auth/signout', { token: member.accessToken, json: {} });
        expect(out.status).toBe(204);
        const elapsed = await waitFor(async () => (await call()).status === 401, revocationBound());
        expect(elapsed).toBeLessThanOrEqual(revocationBound());
      });

      it("limits → 429 with Gatehouse's Retry-After relayed through the proxy; the service is not called", async () => {
        const tenant = `edge-limit-${index}`;
        expect((await request(app.url, 'POST', '/admin/tenants', { token: adminToken, json: { id: tenant, name: tenant } })).status).toBe(
          201,
        );
        const put = await request(app.url, 'PUT', `/admin/tenants/${tenant}/limits`, {
          token: adminToken,
          json: { rate: '1/60s', burst: 1 },
        });
        expect(put.status, put.text).toBe(200);
        const member = await userWithRole(app.url, adminToken, tenant, 'tenant_member', `edge-limit-${index}`);
        // a new URI each time, so nginx's decision cache never answers for Gatehouse
        let n = 0;
        let refused: Awaited<ReturnType<typeof via>> | undefined;
        await waitFor(async () => {
          const result = await via('GET', `/orders/items/limit-${n++}`, { 'x-tenant-id': tenant }, member.accessToken);
          if (result.status === 429) refused = result;
          return refused !== undefined;
        }, 5000);
        expect(Number(refused!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
        expect(refused!.headers.get('content-type')).toContain('application/problem+json');
        expect(refused!.json).toMatchObject({ code: 'rate_limited', status: 429 });
        const before = service.calls.length;
        const again = await via('GET', `/orders/items/limit-${n++}`, { 'x-tenant-id': tenant }, member.accessToken);
        expect(again.status).toBe(429);
        expect(service.calls.length).toBe(before);
      });
    });
  }

  it('nginx serves repeated decisions from its cache (at most 1 s old)', async () => {
    const member = await userWithRole(app.url, adminToken, 'acme', 'tenant_member', 'edge-cache');
    const logged = await startNginx({ gatehousePort: Number(new URL(app.url).port), servicePort: service.port, accessLog: true });
    try {
      for (let i = 0; i < 5; i += 1) {
        const result = await request(`http://127.0.0.1:${logged.port}`, 'GET', '/orders/items/5', {
          token: member.accessToken,
          headers: { 'x-tenant-id': 'acme' },
        });
        expect(result.status).toBe(200);
      }
      const access = () => fs.readFileSync(path.join(logged.dir, 'access.log'), 'utf8');
      await waitFor(() => access().trim().split('\n').length >= 5);
      const statuses = access().trim().split('\n');
      expect(statuses[0]).toBe('200 MISS');
      expect(statuses.filter((line) => line === '200 HIT').length).toBeGreaterThanOrEqual(1);
    } finally {
      await logged.stop();
    }
  });

  it('nginx answers from a new decision once the cached one expires, although it keeps cache files open (open_file_cache)', async () => {
    const member = await userWithRole(app.url, adminToken, 'acme', 'tenant_member', 'edge-flip');
    const logged = await startNginx({ gatehousePort: Number(new URL(app.url).port), servicePort: service.port, accessLog: true });
    const writeRules = async (rules: unknown) => {
      const view = await request(app.url, 'GET', '/admin/routing', { token: adminToken });
      const put = await request(app.url, 'PUT', '/admin/routing/forward/rules', {
        token: adminToken,
        json: rules,
        headers: { 'if-match': String(view.json.forward.revision) },
      });
      expect(put.status, put.text).toBe(200);
    };
    const call = async () => {
      const before = service.calls.length;
      const result = await request(`http://127.0.0.1:${logged.port}`, 'GET', '/orders/flip/1', {
        token: member.accessToken,
        headers: { 'x-tenant-id': 'acme' },
      });
      expect(result.status, result.text).toBe(200);
      return callTo(before, '/orders/flip/1')!.headers['x-auth-principal-id'];
    };
    const access = () => fs.readFileSync(path.join(logged.dir, 'access.log'), 'utf8').trim().split('\n');
    try {
      // a miss, then hits: nginx now holds the protected decision's cache file open
      for (let i = 0; i < 3; i += 1) expect(await call()).toBe(member.userId);
      await waitFor(() => access().length >= 3);
      expect(access()).toContain('200 HIT');
      // the same key's next decision differs (public: no identity headers); nginx writes it to a new file
      await writeRules(RULES.map((rule) => (rule.path_prefix === '/orders/flip' ? { path_prefix: '/orders/flip', public: true } : rule)));
      const elapsed = await waitFor(async () => (await call()) === undefined, 2500);
      expect(elapsed).toBeLessThanOrEqual(2500);
      // hits after that read the new file, not the one nginx held open
      const seen = access().length;
      for (let i = 0; i < 3; i += 1) expect(await call()).toBeUndefined();
      await waitFor(() => access().length >= seen + 3);
      expect(access().slice(seen)).toContain('200 HIT');
    } finally {
      await writeRules(RULES);
      await logged.stop();
    }
  });

  it("nginx maps the decision service's 429 and 400 (auth_request alone would answer 500), keeping Retry-After; unreachable → 503", async () => {
    const limited = await refusingDecisions(429, { 'retry-after': '7', 'x-gatehouse-error': 'rate_limited' });
    const invalid = await refusingDecisions(400, { 'x-gatehouse-error': 'invalid_tenant_id' });
    const edges429 = await startNginx({ gatehousePort: limited.port, servicePort: service.port });
    const edges400 = await startNginx({ gatehousePort: invalid.port, servicePort: service.port });
    const edges503 = await startNginx({ gatehousePort: await freePort(), servicePort: service.port });
    try {
      const tooMany = await request(`http://127.0.0.1:${edges429.port}`, 'GET', '/orders/items/1', { token: adminToken });
      expect(tooMany.status).toBe(429);
      expect(tooMany.headers.get('retry-after')).toBe('7');
      expect(tooMany.headers.get('content-type')).toContain('application/problem+json');
      expect(tooMany.json).toMatchObject({ code: 'rate_limited', status: 429, request_id: 'req-fake' });
      const bad = await request(`http://127.0.0.1:${edges400.port}`, 'GET', '/orders/items/1', { token: adminToken });
      expect(bad.status).toBe(400);
      expect(bad.json).toMatchObject({ code: 'invalid_tenant_id', status: 400 });
      const down = await request(`http://127.0.0.1:${edges503.port}`, 'GET', '/orders/items/1', { token: adminToken });
      expect(down.status).toBe(503);
      expect(down.json.code).toBe('unavailable');
    } finally {
      await Promise.all([edges429.stop(), edges400.stop(), edges503.stop(), limited.stop(), invalid.stop()]);
    }
  });
});
