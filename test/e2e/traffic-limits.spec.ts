import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, type TestApp } from '../support/app';
import { inTenant, userWithRole } from '../support/admin-fixtures';
import { createTestDatabase, type TestDatabase } from '../support/database';
import {
  WebSocket,
  commandClient,
  fakeAggregate,
  fakeHttp,
  grpc,
  submitCommand,
  type FakeAggregate,
  type FakeHttp,
} from '../support/fake-upstreams';
import { http, type HttpResult } from '../support/http';
import { freePort, waitFor } from '../support/process';
import { servicesAvailable } from '../support/services';

const available = servicesAvailable({ postgres: true });
const ADMIN_EMAIL = 'limits-root@example.com';
const ADMIN_PASSWORD = 'bootstrap admin password 123';
// small numbers so a burst shows them; rates in the configuration syntax of CONTRACT §9
const TENANT_RATE = 40; // per second
const TENANT_BURST = 10;
const PRINCIPAL_RATE = 20; // per second
const PRINCIPAL_BURST = 5;
const IN_FLIGHT = 3;
const WS_MESSAGES = 5; // per second

/** Within ±10 % or ± the burst, whichever is larger (CONTRACT §9's bound, applied to one replica too). */
/**
 * A parallel burst: at least the burst gets through, and at most the burst plus what the rate
 * refilled while the burst was being answered (a loaded machine stretches that time).
 */
function expectBurst(admitted: number, burst: number, perSecond: number, startedAt: number): void {
  const refilled = Math.ceil((perSecond * (Date.now() - startedAt)) / 1000);
  expect(admitted, `admitted ${admitted}, burst ${burst}, refilled ${refilled}`).toBeGreaterThanOrEqual(burst);
  expect(admitted, `admitted ${admitted}, burst ${burst}, refilled ${refilled}`).toBeLessThanOrEqual(burst + refilled + 1);
}

describe.skipIf(!available)('traffic limits on proxied calls (CONTRACT §9), one replica', () => {
  let db: TestDatabase;
  let app: TestApp;
  let base: string;
  let grpcPort: number;
  let aggregate: FakeAggregate;
  let projection: FakeHttp;
  let slow: FakeHttp;
  let adminToken: string;
  let ipCounter = 10;
  /** each test calls from its own address, so the in-flight scope of one does not touch another */
  const nextIp = () => {
    ipCounter++;
    return `10.${Math.floor(ipCounter / 250)}.${ipCounter % 250}.1`;
  };

  beforeAll(async () => {
    [db, aggregate, projection, slow] = await Promise.all([
      createTestDatabase(),
      fakeAggregate('agg-l'),
      fakeHttp('proj-l'),
      fakeHttp('slow-l'),
    ]);
    const tenants = ['t-principal', 't-tenant', 't-smooth', 't-grpc', 't-ws', 't-msg', 't-forward', 't-metrics', 't-override'];
    const routing = {
      aggregate: { placement: { 't-grpc': 'a1' }, shards: { a1: [aggregate.endpoint] } },
      projection: {
        placement: { ...Object.fromEntries(tenants.map((tenant) => [tenant, 'p1'])), 't-slow': 'slow' },
        shards: { p1: [projection.endpoint], slow: [slow.endpoint] },
      },
      runner: { placement: {}, shards: {} },
      forward: { rules: [{ path_prefix: '/orders', right: 'queries.run' }] },
    };
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gh-limits-')), 'routing.json');
    fs.writeFileSync(file, JSON.stringify(routing));
    grpcPort = await freePort();
    app = await bootApp({
      DATABASE_URL: db.url,
      MASTER_KEY: Buffer.alloc(32, 13).toString('base64'),
      BOOTSTRAP_ADMIN_EMAIL: ADMIN_EMAIL,
      BOOTSTRAP_ADMIN_PASSWORD: ADMIN_PASSWORD,
      AUTH_IP_LIMIT: '100000',
      ROUTING_FILE: file,
      GRPC_PORT: String(grpcPort),
      TENANT_RATE_LIMIT: `${TENANT_RATE}/1s`,
      TENANT_RATE_BURST: String(TENANT_BURST),
      PRINCIPAL_RATE_LIMIT: `${PRINCIPAL_RATE * 60}/1m`,
      PRINCIPAL_RATE_BURST: String(PRINCIPAL_BURST),
      IP_IN_FLIGHT_LIMIT: String(IN_FLIGHT),
      WS_MESSAGE_RATE_LIMIT: `${WS_MESSAGES}/1s`,
      TRUST_PROXY: '127.0.0.1',
    });
    base = app.url;
    const signin = await http(base, 'POST', '/v1/auth/signin', { json: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } });
    expect(signin.status, signin.text).toBe(200);
    adminToken = signin.json.access_token;
    for (const tenant of [...tenants, 't-slow']) {
      expect((await http(base, 'POST', '/admin/tenants', { token: adminToken, json: { id: tenant, name: tenant } })).status).toBe(201);
    }
  });
  afterAll(async () => {
    await app?.close();
    await Promise.all([aggregate, projection, slow].map((fake) => fake?.stop()));
    await db?.drop();
  });

  const member = (tenant: string) => userWithRole(base, adminToken, tenant, 'tenant_member');
  const query = (tenant: string, token: string, ip = nextIp()) =>
    http(base, 'POST', '/v1/query/orders', { json: { q: 1 }, token, headers: { ...inTenant(tenant), 'x-forwarded-for': ip } });
  const callsFor = (fake: FakeHttp, tenant: string) => fake.calls.filter((call) => call.headers['x-tenant-id'] === tenant).length;

  function expectRefusal(result: HttpResult, scope: string, quota: number, window: number): void {
    expect(result.status, result.text).toBe(429);
    expect(result.headers.get('content-type')).toContain('application/problem+json');
    expect(result.json.code).toBe('rate_limited');
    expect(Number(result.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(result.headers.get('ratelimit-policy')).toBe(`"${scope}";q=${quota};w=${window}`);
    expect(result.headers.get('ratelimit')).toMatch(new RegExp(`^"${scope}";r=0;t=\\d+$`));
    expect(result.headers.get('x-ratelimit-limit')).toBeNull();
  }

  it('principal scope: a parallel burst gets the burst, the rest 429 with the IETF headers; the upstream saw only the admitted', async () => {
    const user = await member('t-principal');
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 30 }, () => query('t-principal', user.accessToken)));
    const admitted = results.filter((result) => result.status === 200);
    const refused = results.filter((result) => result.status !== 200);
    expectBurst(admitted.length, PRINCIPAL_BURST, PRINCIPAL_RATE, started);
    for (const result of refused) expectRefusal(result, 'principal', PRINCIPAL_RATE * 60, 60);
    for (const result of admitted) expect(result.headers.get('ratelimit')).toMatch(/^"(principal|tenant)";r=\d+;t=\d+$/);
    expect(callsFor(projection, 't-principal')).toBe(admitted.length);
    await waitFor(() => app.logs().includes('"rate_limited":"principal"'));
    const line = app
      .logs()
      .split('\n')
      .find((entry) => entry.includes('"rate_limited":"principal"'))!;
    expect(JSON.parse(line)).toMatchObject({ route: '/v1/query/:view_type', status: 429, tenant_id: 't-principal' });
  });

  it('tenant scope: several principals together get the tenant burst, not the sum of theirs', async () => {
    const users = await Promise.all(Array.from({ length: 4 }, () => member('t-tenant')));
    const started = Date.now();
    const results = await Promise.all(
      users.flatMap((user) => Array.from({ length: PRINCIPAL_BURST }, () => query('t-tenant', user.accessToken))),
    );
    const admitted = results.filter((result) => result.status === 200).length;
    expectBurst(admitted, TENANT_BURST, TENANT_RATE, started);
    const tenantRefusals = results.filter((result) => result.headers.get('ratelimit-policy')?.startsWith('"tenant"'));
    expect(tenantRefusals.length).toBeGreaterThan(0);
    for (const result of tenantRefusals) expectRefusal(result, 'tenant', TENANT_RATE, 1);
    expect(callsFor(projection, 't-tenant')).toBe(admitted);
  });

  it('rates are smooth: over a timed run the principal gets its burst plus the rate, no window edge doubles it', async () => {
    const user = await member('t-smooth');
    const ip = nextIp();
    const started = Date.now();
    const durationMs = 2000;
    let admitted = 0;
    // two callers at a time, far faster than 20/s
    await Promise.all(
      [0, 1].map(async () => {
        while (Date.now() - started < durationMs) {
          if ((await query('t-smooth', user.accessToken, ip)).status === 200) admitted++;
        }
      }),
    );
    const elapsed = (Date.now() - started) / 1000;
    const expected = PRINCIPAL_BURST + PRINCIPAL_RATE * elapsed;
    // never more than the rate allows (the point of a smooth limit); fewer only when this loaded
    // machine stalls the callers longer than the burst lasts (a full bucket does not fill further)
    expect(admitted, `admitted ${admitted} of ${expected.toFixed(1)}`).toBeLessThanOrEqual(
      expected + Math.max(expected * 0.1, PRINCIPAL_BURST),
    );
    expect(admitted, `admitted ${admitted} of ${expected.toFixed(1)}`).toBeGreaterThanOrEqual(expected * 0.7);
    expect(callsFor(projection, 't-smooth')).toBe(admitted);
  });

  it('client IP in flight: calls beyond IP_IN_FLIGHT_LIMIT from one address are 429 at once; another address is not affected', async () => {
    const users = await Promise.all(Array.from({ length: 3 }, () => member('t-slow')));
    const ip = nextIp();
    slow.state.delayMs = 600;
    try {
      const started = Date.now();
      const results = await Promise.all(
        users.flatMap((user) => [query('t-slow', user.accessToken, ip), query('t-slow', user.accessToken, ip)]),
      );
      const refused = results.filter((result) => result.status === 429);
      expect(results.filter((result) => result.status === 200)).toHaveLength(IN_FLIGHT);
      expect(refused).toHaveLength(6 - IN_FLIGHT);
      for (const result of refused) {
        expect(result.headers.get('ratelimit-policy')).toBe(`"ip_in_flight";q=${IN_FLIGHT}`);
        expect(result.headers.get('retry-after')).toBe('1');
      }
      expect(Date.now() - started).toBeLessThan(5000);
      expect(callsFor(slow, 't-slow')).toBe(IN_FLIGHT);
      // the slots are given back when the calls end
      expect((await query('t-slow', users[0]!.accessToken, ip)).status).toBe(200);
    } finally {
      slow.state.delayMs = 0;
    }
  });

  it('gRPC SubmitCommand: RESOURCE_EXHAUSTED with retry-after metadata beyond the burst; the aggregate saw only the admitted', async () => {
    const user = await member('t-grpc');
    const client = commandClient(grpcPort);
    const started = Date.now();
    try {
      // gRPC clients all come from the loopback peer: batches of IN_FLIGHT keep within its in-flight count
      const results = [];
      for (let batch = 0; batch < 5; batch++) {
        results.push(
          ...(await Promise.all(
            Array.from({ length: IN_FLIGHT }, (_, i) =>
              submitCommand(
                client,
                {
                  aggregate_type: 'order',
                  aggregate_id: `o-${batch}-${i}`,
                  command_id: `c-${batch}-${i}`,
                  command_type: 'Create',
                  payload: Buffer.from('{}'),
                },
                { authorization: `Bearer ${user.accessToken}`, 'x-tenant-id': 't-grpc' },
              ),
            ),
          )),
        );
      }
      const admitted = results.filter((result) => result.error === null).length;
      const refused = results.filter((result) => result.error !== null);
      expectBurst(admitted, PRINCIPAL_BURST, PRINCIPAL_RATE, started);
      for (const { error } of refused) {
        expect(error!.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
        expect(Number(error!.metadata.get('retry-after')[0])).toBeGreaterThanOrEqual(1);
      }
      expect(aggregate.calls.filter((call) => call.metadata['x-tenant-id'] === 't-grpc')).toHaveLength(admitted);
    } finally {
      client.close();
    }
  });

  function openSocket(
    token: string,
    tenant: string,
    ip: string,
  ): Promise<{ socket?: WebSocket; status?: number; headers?: Record<string, unknown> }> {
    return new Promise((resolve) => {
      const socket = new WebSocket(`${base.replace('http', 'ws')}/v1/subscribe/orders`, {
        headers: { authorization: `Bearer ${token}`, 'x-tenant-id': tenant, 'x-forwarded-for': ip },
      });
      socket.once('open', () => resolve({ socket }));
      socket.once('unexpected-response', (_request, response) => {
        response.resume();
        resolve({ status: response.statusCode, headers: response.headers });
      });
      socket.once('error', () => resolve({}));
    });
  }

  it('WebSocket handshakes beyond the burst get the HTTP 429 before any upstream contact', async () => {
    const user = await member('t-ws');
    const upstreamBefore = projection.sockets.size;
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 12 }, () => openSocket(user.accessToken, 't-ws', nextIp())));
    const opened = results.filter((result) => result.socket !== undefined);
    const refused = results.filter((result) => result.status === 429);
    expectBurst(opened.length, PRINCIPAL_BURST, PRINCIPAL_RATE, started);
    expect(opened.length + refused.length).toBe(12);
    for (const result of refused) {
      expect(result.headers?.['ratelimit-policy']).toBe(`"principal";q=${PRINCIPAL_RATE * 60};w=60`);
      expect(Number(result.headers?.['retry-after'])).toBeGreaterThanOrEqual(1);
    }
    await waitFor(() => projection.sockets.size - upstreamBefore <= opened.length);
    for (const { socket } of opened) socket!.close();
  });

  it(`a client sending faster than WS_MESSAGE_RATE_LIMIT is closed with 1008`, async () => {
    const user = await member('t-msg');
    const { socket } = await openSocket(user.accessToken, 't-msg', nextIp());
    expect(socket).toBeDefined();
    const closed = new Promise<number>((resolve) => socket!.once('close', (code) => resolve(code)));
    const receivedBefore = projection.received.length;
    for (let i = 0; i < 3 * WS_MESSAGES; i++) socket!.send(`m-${i}`);
    expect(await closed).toBe(1008);
    expect(projection.received.length - receivedBefore).toBeLessThanOrEqual(WS_MESSAGES + 1);
    await waitFor(() => app.logs().includes('"scope":"ws_message"') || app.logs().includes('message rate limit'));
  });

  it('forward-auth decisions (route class forward) are limited like proxied calls', async () => {
    const user = await member('t-forward');
    const started = Date.now();
    const results = await Promise.all(
      Array.from({ length: 15 }, () =>
        http(base, 'GET', '/v1/authz/forward', {
          token: user.accessToken,
          headers: { 'x-original-method': 'GET', 'x-original-uri': '/orders/1', 'x-tenant-id': 't-forward', 'x-forwarded-for': nextIp() },
        }),
      ),
    );
    const admitted = results.filter((result) => result.status === 200);
    expectBurst(admitted.length, PRINCIPAL_BURST, PRINCIPAL_RATE, started);
    for (const result of admitted) expect(result.headers.get('ratelimit')).toMatch(/^"(principal|tenant)";r=\d+;t=\d+$/);
    for (const result of results.filter((result) => result.status !== 200)) expectRefusal(result, 'principal', PRINCIPAL_RATE * 60, 60);
  });

  it('per-tenant override: GET shows the default, PUT sets it (audited) for each route class, DELETE returns to the default', async () => {
    const limits = '/admin/tenants/t-override/limits';
    const initial = await http(base, 'GET', limits, { token: adminToken });
    expect(initial.status, initial.text).toBe(200);
    expect(initial.json).toEqual({ tenant_id: 't-override', rate: '40/1s', burst: TENANT_BURST, source: 'default' });
    expect((await http(base, 'PUT', limits, { token: adminToken, json: { rate: 'fast', burst: 2 } })).status).toBe(400);
    expect((await http(base, 'PUT', '/admin/tenants/nope-tenant/limits', { token: adminToken, json: { rate: '2/1s' } })).status).toBe(404);
    const user = await member('t-override');
    expect((await http(base, 'GET', limits, { token: user.accessToken })).status).toBe(403);

    const put = await http(base, 'PUT', limits, { token: adminToken, json: { rate: '60/1m', burst: 2 } });
    expect(put.status, put.text).toBe(200);
    expect(put.json).toEqual({ tenant_id: 't-override', rate: '60/60s', burst: 2, source: 'override' });
    expect((await http(base, 'GET', limits, { token: adminToken })).json.source).toBe('override');
    const audit = await http(base, 'GET', '/admin/audit?action=platform.tenant.limits_update&tenant_id=t-override', { token: adminToken });
    expect(audit.json.items[0]).toMatchObject({ action: 'platform.tenant.limits_update', target: { type: 'tenant', id: 't-override' } });

    // burst 2 for each route class separately: query gets 2, a WebSocket handshake its own 2
    const queries = await Promise.all(Array.from({ length: 6 }, () => query('t-override', user.accessToken)));
    expect(queries.filter((result) => result.status === 200)).toHaveLength(2);
    const refused = queries.find((result) => result.status === 429)!;
    expect(refused.headers.get('ratelimit-policy')).toBe('"tenant";q=60;w=60');
    const socket = await openSocket(user.accessToken, 't-override', nextIp());
    expect(socket.socket).toBeDefined();
    socket.socket!.close();

    const removed = await http(base, 'DELETE', limits, { token: adminToken });
    expect(removed.status, removed.text).toBe(200);
    expect(removed.json.source).toBe('default');
    expect((await query('t-override', (await member('t-override')).accessToken)).status).toBe(200);
  });

  it('counts refusals in gatehouse_rate_limited_total by scope and route class', async () => {
    const metrics = (await http(base, 'GET', '/metrics')).text;
    const lines = metrics.split('\n').filter((line) => line.startsWith('gatehouse_rate_limited_total'));
    for (const [scope, routeClass] of [
      ['principal', 'query'],
      ['tenant', 'query'],
      ['ip_in_flight', 'query'],
      ['principal', 'commands'],
      ['principal', 'subscribe'],
      ['ws_message', 'subscribe'],
      ['principal', 'forward'],
    ]) {
      expect(lines.join('\n'), lines.join('\n')).toMatch(
        new RegExp(`gatehouse_rate_limited_total\\{scope="${scope}",route_class="${routeClass}"\\} [1-9]`),
      );
    }
  });
});
