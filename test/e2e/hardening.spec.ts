import fs from 'node:fs';
import nodeHttp from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SigningKeyService } from '../../src/session/signing-key.service';
import { bootApp, type TestApp } from '../support/app';
import { createTenant } from '../support/admin-fixtures';
import { signinAdmin, signupUser, type SignedUp } from '../support/auth-flows';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { WebSocket, fakeAggregate, fakeHttp, type FakeAggregate, type FakeHttp } from '../support/fake-upstreams';
import { http, STRONG_PASSWORD } from '../support/http';
import { servicesAvailable } from '../support/services';

/**
 * Security hardening (issue 11): each test sends the attack and expects the safe answer.
 * One app for the items that need no configuration of their own.
 */
const available = servicesAvailable({ postgres: true });
const MASTER_KEY = Buffer.alloc(32, 41).toString('base64');
const ADMIN_EMAIL = 'hardening-root@example.com';
const ADMIN_PASSWORD = 'bootstrap admin password 123';
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`;
const ACCESS_TOKEN_TTL = 600;

interface RawResult {
  status: number;
  headers: nodeHttp.IncomingHttpHeaders;
  text: string;
}

/** node:http sends the request target exactly as written (fetch would resolve `..` first). */
function raw(
  base: string,
  method: string,
  target: string,
  headers: Record<string, string | string[]> = {},
  body?: string,
): Promise<RawResult> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const request = nodeHttp.request({ host: url.hostname, port: url.port, method, path: target, headers, agent: false }, (response) => {
      let text = '';
      response.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, text }));
    });
    request.on('error', reject);
    request.end(body);
  });
}

describe.skipIf(!available)('security hardening (issue 11)', () => {
  let db: TestDatabase;
  let app: TestApp;
  let base: string;
  let projection: FakeHttp;
  let runner: FakeHttp;
  let aggregate: FakeAggregate;
  let adminToken: string;
  let globUser: SignedUp;

  beforeAll(async () => {
    [db, projection, runner, aggregate] = await Promise.all([
      createTestDatabase(),
      fakeHttp('proj-h'),
      fakeHttp('runner-h'),
      fakeAggregate('agg-h'),
    ]);
    const routing = {
      aggregate: { placement: { acme: 'a1' }, shards: { a1: [aggregate.endpoint] } },
      projection: { placement: { acme: 'p1' }, shards: { p1: [projection.endpoint] } },
      runner: { placement: { '*': 'r1' }, shards: { r1: [runner.endpoint] } },
    };
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gh-hardening-')), 'routing.json');
    fs.writeFileSync(file, JSON.stringify(routing));
    app = await bootApp({
      DATABASE_URL: db.url,
      MASTER_KEY,
      BOOTSTRAP_ADMIN_EMAIL: ADMIN_EMAIL,
      BOOTSTRAP_ADMIN_PASSWORD: ADMIN_PASSWORD,
      AUTH_IP_LIMIT: '100000',
      ROUTING_FILE: file,
      ACCESS_TOKEN_TTL: String(ACCESS_TOKEN_TTL),
    });
    base = app.url;
    adminToken = await signinAdmin(base, ADMIN_EMAIL, ADMIN_PASSWORD);
    await createTenant(base, adminToken, 'acme');
    // a user granted only the `order*` resources, the glob the traversal tried to escape
    const role = await http(base, 'POST', '/admin/roles', {
      token: adminToken,
      headers: { 'x-tenant-id': 'acme' },
      json: {
        name: 'orders-only',
        tenant_id: 'acme',
        grants: ['queries.run:order*', 'streams.subscribe:order*', 'commands.submit:order*'],
      },
    });
    expect(role.status, role.text).toBe(201);
    globUser = await signupUser(base);
    const assigned = await http(base, 'POST', '/admin/assignments', {
      token: adminToken,
      json: { principal_id: globUser.userId, tenant_id: 'acme', role_id: role.json.id },
    });
    expect(assigned.status, assigned.text).toBe(201);
  });
  afterAll(async () => {
    await app?.close();
    await Promise.all([projection, runner, aggregate].map((fake) => fake?.stop()));
    await db?.drop();
  });

  describe('encoded traversal in resource segments', () => {
    const bearer = () => ({ authorization: `Bearer ${globUser.accessToken}`, 'x-tenant-id': 'acme', 'content-type': 'application/json' });

    it('POST /v1/query with %2F.., %3F or %23 in view_type is 400 validation_failed and never forwarded', async () => {
      const control = await raw(base, 'POST', '/v1/query/orders', bearer(), '{}');
      expect(control.status, control.text).toBe(200);
      const before = projection.calls.length;
      for (const target of [
        'orders%2F..%2Fpayroll',
        'orders%3Fpayroll',
        'orders%23payroll',
        'orders..payroll',
        'orders%2F%2E%2E%2Fpayroll',
      ]) {
        const refused = await raw(base, 'POST', `/v1/query/${target}`, bearer(), '{}');
        expect(refused.status, `${target}: ${refused.text}`).toBe(400);
        expect(JSON.parse(refused.text)).toMatchObject({ code: 'validation_failed', errors: [{ path: 'view_type' }] });
        // refused before authorization: an admin holding queries.run:* gets the same answer
        const asAdmin = await raw(base, 'POST', `/v1/query/${target}`, { ...bearer(), authorization: `Bearer ${adminToken}` }, '{}');
        expect(asAdmin.status, target).toBe(400);
      }
      expect(projection.calls.length).toBe(before);
    });

    it('POST /v1/commands with an encoded traversal in aggregate_type is 400 and never forwarded', async () => {
      const before = aggregate.calls.length;
      const refused = await raw(
        base,
        'POST',
        '/v1/commands/orders%2F..%2Fpayroll/o-1',
        bearer(),
        JSON.stringify({ command_id: 'c1', command_type: 'x' }),
      );
      expect(refused.status, refused.text).toBe(400);
      expect(JSON.parse(refused.text).code).toBe('validation_failed');
      expect(aggregate.calls.length).toBe(before);
    });

    it('GET /v1/subscribe with an encoded traversal is refused with 400 at the handshake', async () => {
      const before = projection.calls.length;
      for (const target of ['orders%2F..%2Fpayroll', 'orders%3Fx', 'orders%23x']) {
        const outcome = await new Promise<{ status?: number; body?: string }>((resolve) => {
          const socket = new WebSocket(`${base.replace('http', 'ws')}/v1/subscribe/${target}?tenant_id=acme`, {
            headers: { authorization: `Bearer ${globUser.accessToken}` },
          });
          socket.once('unexpected-response', (_request, response) => {
            let body = '';
            response.on('data', (chunk: Buffer) => (body += chunk.toString()));
            response.on('end', () => resolve({ status: response.statusCode, body }));
          });
          socket.once('open', () => {
            socket.close();
            resolve({ status: 101 });
          });
          socket.once('error', () => resolve({}));
        });
        expect(outcome.status, target).toBe(400);
        expect(JSON.parse(outcome.body!).code).toBe('validation_failed');
      }
      expect(projection.calls.length).toBe(before);
    });

    it('the runner passthrough refuses dot segments and "//host" targets and sends a normalised path', async () => {
      const admin = { authorization: `Bearer ${adminToken}` };
      const before = runner.calls.length;
      for (const target of [
        '/admin/runner/../../etc/passwd',
        '/admin/runner/jobs/../../etc/passwd',
        '/admin/runner/%2e%2e/%2e%2e/etc/passwd',
        '/admin/runner/./jobs',
        '/admin/runner//evil.example/x',
        '/admin/runner/jobs%2F..%2F..%2Fetc',
        '/admin/runner/jobs%5C..%5Cetc',
      ]) {
        const refused = await raw(base, 'GET', target, admin);
        expect(refused.status, `${target}: ${refused.text}`).toBe(400);
        expect(JSON.parse(refused.text).code).toBe('validation_failed');
      }
      // absolute-form request targets never reach the runner either
      const absolute = await raw(base, 'GET', 'http://evil.example/admin/runner/x', admin);
      expect(absolute.status).toBeGreaterThanOrEqual(400);
      expect(runner.calls.length).toBe(before);

      const allowed = await raw(base, 'GET', '/admin/runner/jobs/a%20b/%7Eq/?limit=5&x=%2F', admin);
      expect(allowed.status, allowed.text).toBe(200);
      expect(runner.calls.at(-1)!.url).toBe('/jobs/a%20b/~q/?limit=5&x=%2F');
    });
  });

  describe('Authorization headers and access-token claims', () => {
    it('two Authorization headers are 400, on HTTP and at a WebSocket handshake', async () => {
      const token = `Bearer ${globUser.accessToken}`;
      const single = await raw(base, 'GET', '/v1/auth/me', { authorization: token });
      expect(single.status).toBe(200);
      const twice = await raw(base, 'GET', '/v1/auth/me', { authorization: [token, `Bearer ${adminToken}`] });
      expect(twice.status, twice.text).toBe(400);
      expect(JSON.parse(twice.text)).toMatchObject({ code: 'validation_failed', errors: [{ path: 'authorization' }] });
      const ws = await raw(base, 'GET', '/v1/subscribe/orders?tenant_id=acme', {
        authorization: [token, token],
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': Buffer.alloc(16, 7).toString('base64'),
      });
      expect(ws.status).toBe(400);
    });

    async function forge(claims: Record<string, unknown>): Promise<string> {
      const { kid, privateKey } = app.gatehouse.app.get(SigningKeyService).signingKey();
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({
        sub: globUser.userId,
        sid: globUser.sessionId,
        amr: ['pwd'],
        principal_type: 'user',
        jti: `forged-${Math.random()}`,
        iss: app.gatehouse.config.PUBLIC_URL,
        aud: 'gatehouse',
        iat: now,
        exp: now + ACCESS_TOKEN_TTL,
        ...claims,
      })
        .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid })
        .sign(privateKey);
    }

    it('tokens with a future iat, a lifetime above ACCESS_TOKEN_TTL or foreign audiences are 401', async () => {
      const now = Math.floor(Date.now() / 1000);
      const me = async (token: string) => http(base, 'GET', '/v1/auth/me', { token });
      // controls: a well-formed token, and a one-element audience array
      expect((await me(await forge({}))).status).toBe(200);
      expect((await me(await forge({ aud: ['gatehouse'] }))).status).toBe(200);
      expect((await me(await forge({ iat: now + 20, exp: now + 20 + ACCESS_TOKEN_TTL }))).status).toBe(200);
      for (const [name, claims] of [
        ['iat an hour ahead', { iat: now + 3600, exp: now + 3600 + ACCESS_TOKEN_TTL }],
        ['iat beyond the leeway', { iat: now + 120, exp: now + 120 + ACCESS_TOKEN_TTL }],
        // iat given too: forge() reads the clock again, and a second ticking in between made the lifetime exactly the TTL
        ['lifetime above the TTL', { iat: now, exp: now + ACCESS_TOKEN_TTL + 1 }],
        ['a day-long token', { exp: now + 86_400 }],
        ['aud naming another service too', { aud: ['gatehouse', 'billing'] }],
      ] as const) {
        const refused = await me(await forge(claims));
        expect(refused.status, name).toBe(401);
        expect(refused.json.code, name).toBe('invalid_token');
        expect(refused.headers.get('www-authenticate'), name).toBe('Bearer error="invalid_token"');
      }
    });
  });

  it('malformed refresh tokens (too long, empty, wrong type, missing) are 401 invalid_grant like an unknown one', async () => {
    const unknown = await http(base, 'POST', '/v1/auth/refresh', { json: { refresh_token: 'not-a-token-we-issued' } });
    expect(unknown.status).toBe(401);
    const shape = (body: Record<string, unknown>) => ({ ...body, request_id: undefined });
    for (const body of [
      { refresh_token: 'x'.repeat(10_000) },
      { refresh_token: '' },
      { refresh_token: 12345 },
      { refresh_token: ['a', 'b'] },
      { refresh_token: { $ne: null } },
      { refresh_token: null },
      {},
      [],
    ]) {
      const refused = await http(base, 'POST', '/v1/auth/refresh', { json: body });
      expect(refused.status, JSON.stringify(body).slice(0, 60)).toBe(401);
      expect(shape(refused.json)).toEqual(shape(unknown.json));
    }
  });

  it('tracestate goes upstream only with a valid traceparent, trimmed to 32 well-formed members', async () => {
    const members = Array.from({ length: 40 }, (_, index) => `v${index}=s${index}`);
    const send = (headers: Record<string, string>) =>
      http(base, 'POST', '/v1/query/orders', { token: adminToken, json: {}, headers: { 'x-tenant-id': 'acme', ...headers } });

    expect((await send({ traceparent: TRACEPARENT, tracestate: members.join(',') })).status).toBe(200);
    expect(projection.calls.at(-1)!.headers.tracestate).toBe(members.slice(0, 32).join(','));

    expect((await send({ traceparent: TRACEPARENT, tracestate: 'good=1,BAD KEY=2,,also=ok' })).status).toBe(200);
    expect(projection.calls.at(-1)!.headers.tracestate).toBe('good=1,also=ok');

    const withoutValidParent: Record<string, string>[] = [
      { tracestate: 'vendor=x' },
      { traceparent: '00-not-a-trace-01', tracestate: 'vendor=x' },
    ];
    for (const headers of withoutValidParent) {
      expect((await send(headers)).status).toBe(200);
      expect(projection.calls.at(-1)!.headers.tracestate).toBeUndefined();
    }
  });

  it('email addresses above 254 octets or with a local part above 64 are 400', async () => {
    const domain = '@example.com';
    const local64 = `u${'a'.repeat(63)}`;
    const ok = await http(base, 'POST', '/v1/auth/signup', { json: { email: `${local64}${domain}`, password: STRONG_PASSWORD } });
    expect(ok.status, ok.text).toBe(201);
    const longDomain = `@${'d'.repeat(62)}.${'e'.repeat(62)}.${'f'.repeat(62)}.${'g'.repeat(62)}.com`;
    for (const email of [`${local64}a${domain}`, `user${longDomain}`]) {
      expect(email.length > 254 || email.indexOf('@') > 64).toBe(true);
      for (const [route, body] of [
        ['/v1/auth/signup', { email, password: STRONG_PASSWORD }],
        ['/v1/auth/signin', { email, password: STRONG_PASSWORD }],
        ['/v1/auth/forgot', { email }],
      ] as const) {
        const refused = await http(base, 'POST', route, { json: body });
        expect(refused.status, `${route} ${email.length}`).toBe(400);
        expect(refused.json).toMatchObject({ code: 'validation_failed', errors: [{ path: 'email' }] });
      }
    }
  });
});
