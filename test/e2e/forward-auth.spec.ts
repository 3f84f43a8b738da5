import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { userWithRole } from '../support/admin-fixtures';
import { bootApp, type TestApp } from '../support/app';
import { signupUser } from '../support/auth-flows';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { http } from '../support/http';
import { waitFor } from '../support/process';
import { servicesAvailable } from '../support/services';

const available = servicesAvailable({ postgres: true });
const MASTER_KEY = Buffer.alloc(32, 51).toString('base64');
const ADMIN_EMAIL = 'forward-root@example.com';
const ADMIN_PASSWORD = 'bootstrap admin password 123';

export const FORWARD_TEST_RULES = [
  { path_prefix: '/public', public: true },
  { path_prefix: '/orders', methods: ['GET'], right: 'queries.run', resource: '{1}' },
  { path_prefix: '/orders', right: 'commands.submit', resource: '{1}' },
  { path_prefix: '/ops', right: 'platform.routing.read', tenant: 'none' },
  { host: 'reports.example.com', path_prefix: '/', right: 'queries.run', resource: 'reports' },
];

describe.skipIf(!available)('forward-auth decision API (CONTRACT §10), single node', () => {
  let db: TestDatabase;
  let app: TestApp;
  let base: string;
  let adminToken: string;
  let adminId: string;
  let jwks: ReturnType<typeof createLocalJWKSet>;

  const decide = (method: string, uri: string, headers: Record<string, string> = {}, token?: string) =>
    http(base, 'GET', '/v1/authz/forward', { token, headers: { 'x-original-method': method, 'x-original-uri': uri, ...headers } });

  beforeAll(async () => {
    db = await createTestDatabase();
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gh-forward-')), 'routing.json');
    fs.writeFileSync(file, JSON.stringify({ forward: { rules: FORWARD_TEST_RULES } }));
    app = await bootApp({
      DATABASE_URL: db.url,
      MASTER_KEY,
      BOOTSTRAP_ADMIN_EMAIL: ADMIN_EMAIL,
      BOOTSTRAP_ADMIN_PASSWORD: ADMIN_PASSWORD,
      AUTH_IP_LIMIT: '100000',
      ROUTING_FILE: file,
    });
    base = app.url;
    const signin = await http(base, 'POST', '/v1/auth/signin', { json: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } });
    expect(signin.status, signin.text).toBe(200);
    adminToken = signin.json.access_token;
    adminId = signin.json.user.id;
    for (const id of ['acme', 'beta']) {
      const created = await http(base, 'POST', '/admin/tenants', { token: adminToken, json: { id, name: id } });
      expect(created.status, created.text).toBe(201);
    }
    jwks = createLocalJWKSet((await http(base, 'GET', '/.well-known/jwks.json')).json as JSONWebKeySet);
  });
  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });

  it('allows a member: 200, empty body, identity headers, a 60 s internal token (aud forward) and at most 1 s of caching', async () => {
    const member = await userWithRole(base, adminToken, 'acme', 'tenant_member', 'fwd-member');
    const result = await decide('GET', '/orders/42?secret=1', { 'x-tenant-id': 'acme', cookie: 'x=1' }, member.accessToken);
    expect(result.status, result.text).toBe(200);
    expect(result.text).toBe('');
    expect(result.headers.get('x-auth-principal-id')).toBe(member.userId);
    expect(result.headers.get('x-auth-principal-type')).toBe('user');
    expect(result.headers.get('x-tenant-id')).toBe('acme');
    expect(result.headers.get('cache-control')).toBe('private, max-age=1');
    const authorization = result.headers.get('authorization')!;
    expect(authorization).toMatch(/^Bearer /);
    const token = authorization.slice('Bearer '.length);
    expect(token).not.toBe(member.accessToken);
    const { payload } = await jwtVerify(token, jwks, {
      algorithms: ['ES256'],
      audience: 'forward',
      issuer: app.gatehouse.config.PUBLIC_URL,
    });
    expect(payload.sub).toBe(member.userId);
    expect(payload.tenant_id).toBe('acme');
    expect(payload.exp! - payload.iat!).toBe(60);

    // the log line names the route and the original request (path only: a query may hold secrets)
    await waitFor(() => app.logs().includes(`"forwarded":"GET /orders/42"`));
    const line = app
      .logs()
      .split('\n')
      .find((entry) => entry.includes(`"forwarded":"GET /orders/42"`))!;
    expect(JSON.parse(line)).toMatchObject({ route: '/v1/authz/forward', status: 200, principal_id: member.userId, tenant_id: 'acme' });
    expect(line).not.toContain('secret');
  });

  it('answers every method and ignores the body, whatever its content type (X-Forwarded-* as Traefik and Caddy send them)', async () => {
    const member = await userWithRole(base, adminToken, 'acme', 'tenant_member', 'fwd-methods');
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const result = await http(base, method, '/v1/authz/forward', {
        token: member.accessToken,
        body: 'a=1&b=2',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'x-forwarded-method': 'POST',
          'x-forwarded-uri': '/orders/7/items',
          'x-forwarded-host': 'shop.example.com',
          'x-forwarded-proto': 'https',
          'x-tenant-id': 'acme',
        },
      });
      expect(result.status, `${method}: ${result.text}`).toBe(200);
    }
  });

  it('no credentials → 401 unauthenticated with WWW-Authenticate; a bad token → 401 invalid_token; cookies are never read', async () => {
    const none = await decide('GET', '/orders/1', { 'x-tenant-id': 'acme' });
    expect(none.status).toBe(401);
    expect(none.headers.get('content-type')).toContain('application/problem+json');
    expect(none.json.code).toBe('unauthenticated');
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    const bad = await decide('GET', '/orders/1', { 'x-tenant-id': 'acme' }, `${adminToken}x`);
    expect(bad.status).toBe(401);
    expect(bad.json.code).toBe('invalid_token');
    expect(bad.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
    const cookie = await decide('GET', '/orders/1', { 'x-tenant-id': 'acme', cookie: `access_token=${adminToken}; session=${adminToken}` });
    expect(cookie.status).toBe(401);
    expect(cookie.json.code).toBe('unauthenticated');
  });

  it('a right not held → 403 forbidden; another tenant → 403 tenant_forbidden; the tenant header follows §5', async () => {
    const viewer = await userWithRole(base, adminToken, 'acme', 'tenant_viewer', 'fwd-viewer');
    expect((await decide('GET', '/orders/1', { 'x-tenant-id': 'acme' }, viewer.accessToken)).status).toBe(200);
    const write = await decide('POST', '/orders/1', { 'x-tenant-id': 'acme' }, viewer.accessToken);
    expect(write.status).toBe(403);
    expect(write.json.code).toBe('forbidden');
    const other = await decide('GET', '/orders/1', { 'x-tenant-id': 'beta' }, viewer.accessToken);
    expect(other.status).toBe(403);
    expect(other.json.code).toBe('tenant_forbidden');
    const missing = await decide('GET', '/orders/1', {}, viewer.accessToken);
    expect(missing.status).toBe(400);
    expect(missing.json.code).toBe('tenant_required');
    const malformed = await decide('GET', '/orders/1', { 'x-tenant-id': 'Not A Tenant' }, viewer.accessToken);
    expect(malformed.status).toBe(400);
    expect(malformed.json.code).toBe('invalid_tenant_id');
  });

  it('a resource glob applies to the {n} segment of the normalised path', async () => {
    const role = await http(base, 'POST', '/admin/roles', {
      token: adminToken,
      json: { name: 'order-reader', tenant_id: 'acme', grants: ['queries.run:order*'] },
    });
    expect(role.status, role.text).toBe(201);
    const reader = await signupUser(base);
    const assigned = await http(base, 'POST', '/admin/assignments', {
      token: adminToken,
      json: { principal_id: reader.userId, tenant_id: 'acme', role_id: role.json.id },
    });
    expect(assigned.status, assigned.text).toBe(201);
    const as = (uri: string) => decide('GET', uri, { 'x-tenant-id': 'acme' }, reader.accessToken);
    expect((await as('/orders/order-1')).status).toBe(200);
    expect((await as('/orders/payroll')).status).toBe(403);
    // climbing back out of an allowed resource is judged on the resolved path
    expect((await as('/orders/order-1/%2e%2e/payroll')).status).toBe(403);
    expect((await as('/orders/order-1%2F..%2Fpayroll')).status).toBe(400);
  });

  it('tenant "none" rules check the right at platform scope, without x-tenant-id', async () => {
    const admin = await decide('GET', '/ops/dashboard', {}, adminToken);
    expect(admin.status, admin.text).toBe(200);
    expect(admin.headers.get('x-auth-principal-id')).toBe(adminId);
    expect(admin.headers.get('x-tenant-id')).toBeNull();
    const member = await userWithRole(base, adminToken, 'acme', 'tenant_admin', 'fwd-tenant-admin');
    expect((await decide('GET', '/ops/dashboard', { 'x-tenant-id': 'acme' }, member.accessToken)).status).toBe(403);
  });

  it('a public rule passes without credentials and sends no identity; an unmatched path or host → 403 (deny by default)', async () => {
    const open = await decide('GET', '/public/logo.png');
    expect(open.status).toBe(200);
    expect(open.headers.get('x-auth-principal-id')).toBeNull();
    expect(open.headers.get('authorization')).toBeNull();
    const unmatched = await decide('GET', '/publicity', {}, adminToken);
    expect(unmatched.status).toBe(403);
    expect(unmatched.json.code).toBe('forbidden');
    expect((await decide('GET', '/', { 'x-forwarded-host': 'shop.example.com' }, adminToken)).status).toBe(403);
    const host = await decide('GET', '/', { 'x-forwarded-host': 'reports.example.com', 'x-tenant-id': 'acme' }, adminToken);
    expect(host.status, host.text).toBe(200);
  });

  it('malformed original requests → 400 validation_failed naming the header', async () => {
    const traversal = await decide('GET', '/public/..%2F..%2Fetc%2Fpasswd');
    expect(traversal.status).toBe(400);
    expect(traversal.json.code).toBe('validation_failed');
    expect(traversal.json.errors[0].path).toBe('X-Original-URI');
    expect((await decide('GET', '/public/%00')).status).toBe(400);
    expect((await decide('GET', '/../public')).status).toBe(400);
    const noUri = await http(base, 'GET', '/v1/authz/forward', { headers: { 'x-original-method': 'GET' } });
    expect(noUri.status).toBe(400);
    expect(noUri.json.code).toBe('validation_failed');
  });

  it('the first decision (token and grants loaded) and the ones answered from memory after it are the same answer, and each frees its in-flight slot', async () => {
    const member = await userWithRole(base, adminToken, 'acme', 'tenant_member', 'fwd-memory');
    const answers: Awaited<ReturnType<typeof decide>>[] = [];
    // more than IP_IN_FLIGHT_LIMIT (40) one after the other: a slot kept by any of them would refuse the last ones with 429
    for (let i = 0; i < 45; i += 1) answers.push(await decide('GET', '/orders/9', { 'x-tenant-id': 'acme' }, member.accessToken));
    const [loaded, ...fromMemory] = answers;
    expect(loaded!.status, loaded!.text).toBe(200);
    const identity = (answer: Awaited<ReturnType<typeof decide>>) =>
      ['x-auth-principal-id', 'x-auth-principal-type', 'x-tenant-id', 'authorization', 'cache-control'].map((name) =>
        answer.headers.get(name),
      );
    expect(identity(loaded!)[0]).toBe(member.userId);
    for (const answer of fromMemory) {
      expect(answer.status, answer.text).toBe(200);
      expect(answer.text).toBe('');
      expect(identity(answer)).toEqual(identity(loaded!));
      expect(answer.headers.has('ratelimit')).toBe(loaded!.headers.has('ratelimit'));
    }
    // a refusal from memory as from a load
    const other = await decide('GET', '/orders/9', { 'x-tenant-id': 'beta' }, member.accessToken);
    expect(other.status).toBe(403);
    expect(other.headers.get('x-gatehouse-error')).toBe('tenant_forbidden');
  });

  it('a signed-out session is refused within 1 s', async () => {
    const member = await userWithRole(base, adminToken, 'acme', 'tenant_member', 'fwd-signout');
    expect((await decide('GET', '/orders/1', { 'x-tenant-id': 'acme' }, member.accessToken)).status).toBe(200);
    const out = await http(base, 'POST', '/v1/auth/signout', { token: member.accessToken, json: {} });
    expect(out.status, out.text).toBe(204);
    const elapsed = await waitFor(
      async () => (await decide('GET', '/orders/1', { 'x-tenant-id': 'acme' }, member.accessToken)).status === 401,
      1000,
    );
    expect(elapsed).toBeLessThan(1000);
  });

  describe('PUT /admin/routing/forward/rules (If-Match, single node)', () => {
    it('shows the rules in GET /admin/routing, requires If-Match, refuses stale and invalid writes, applies and audits good ones', async () => {
      const view = await http(base, 'GET', '/admin/routing', { token: adminToken });
      expect(view.status).toBe(200);
      expect(view.json.forward.rules).toHaveLength(FORWARD_TEST_RULES.length);
      expect(view.json.forward.rules[0]).toEqual({ path_prefix: '/public', public: true, tenant: 'header' });
      const revision = view.json.forward.revision as number;
      expect(revision).toBeGreaterThan(0);

      const next = [...FORWARD_TEST_RULES, { path_prefix: '/new', public: true }];
      const put = (body: unknown, headers: Record<string, string>, token = adminToken) =>
        http(base, 'PUT', '/admin/routing/forward/rules', { token, json: body, headers });

      const noIfMatch = await put(next, {});
      expect(noIfMatch.status).toBe(400);
      expect(noIfMatch.json.code).toBe('validation_failed');
      const stale = await put(next, { 'if-match': `"${revision + 5}"` });
      expect(stale.status).toBe(412);
      expect(stale.json).toMatchObject({ code: 'conflict', status: 412 });
      const invalid = await put([{ path_prefix: '/x' }], { 'if-match': String(revision) });
      expect(invalid.status).toBe(400);
      expect(invalid.json.errors[0].path).toBe('forward.rules.0.right');
      const member = await userWithRole(base, adminToken, 'acme', 'tenant_admin', 'fwd-writer');
      expect((await put(next, { 'if-match': String(revision), 'x-tenant-id': 'acme' }, member.accessToken)).status).toBe(403);
      expect((await decide('GET', '/new/page')).status).toBe(403);

      const written = await put(next, { 'if-match': `"${revision}"` });
      expect(written.status, written.text).toBe(200);
      const newRevision = written.json.forward.revision as number;
      expect(newRevision).toBeGreaterThan(revision);
      expect(written.headers.get('etag')).toBe(`"${newRevision}"`);
      expect(written.json.forward.rules).toHaveLength(next.length);
      expect(written.json.service_kinds).toBeDefined();
      expect((await decide('GET', '/new/page')).status).toBe(200);

      // the old revision is stale now
      expect((await put(FORWARD_TEST_RULES, { 'if-match': String(revision) })).status).toBe(412);

      const audit = await http(base, 'GET', '/admin/audit?action=routing.write', { token: adminToken });
      expect(audit.status).toBe(200);
      expect(audit.json.items).toHaveLength(1);
      expect(audit.json.items[0]).toMatchObject({
        action: 'routing.write',
        target: { type: 'routing', id: 'forward.rules' },
        changes: { key: 'forward.rules', previous_revision: revision, revision: newRevision, persisted: false },
      });
      // back to the suite's rules for any later case
      expect((await put({ rules: FORWARD_TEST_RULES }, { 'if-match': String(newRevision) })).status).toBe(200);
    });
  });
});
