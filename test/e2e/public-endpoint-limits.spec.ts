import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, type TestApp } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { STRONG_PASSWORD, http, uniqueEmail } from '../support/http';
import { servicesAvailable } from '../support/services';

const available = servicesAvailable({ postgres: true });
const ADMIN_EMAIL = 'public-limits@example.com';
const ADMIN_PASSWORD = 'bootstrap admin password 123';
const IP_LIMIT = 4;
const ADMIN_WRITES = 3;

/** CONTRACT §4 wave 2 / §2: sign-up and failed refreshes count toward AUTH_IP_LIMIT; admin mutations per principal. */
describe.skipIf(!available)('limits on public endpoints and admin writes', () => {
  let db: TestDatabase;
  let app: TestApp;

  beforeAll(async () => {
    db = await createTestDatabase();
    app = await bootApp({
      DATABASE_URL: db.url,
      MASTER_KEY: Buffer.alloc(32, 29).toString('base64'),
      BOOTSTRAP_ADMIN_EMAIL: ADMIN_EMAIL,
      BOOTSTRAP_ADMIN_PASSWORD: ADMIN_PASSWORD,
      AUTH_IP_LIMIT: String(IP_LIMIT),
      ADMIN_WRITE_LIMIT: `${ADMIN_WRITES}/60s`,
      TRUST_PROXY: '127.0.0.1',
    });
  });
  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });

  const from = (ip: string) => ({ 'x-forwarded-for': ip });

  it('sign-ups beyond AUTH_IP_LIMIT from one address are 429 with Retry-After, before any account is made', async () => {
    const results = [];
    for (let i = 0; i <= IP_LIMIT; i++) {
      results.push(
        await http(app.url, 'POST', '/v1/auth/signup', {
          json: { email: uniqueEmail('ipl'), password: STRONG_PASSWORD },
          headers: from('192.0.2.1'),
        }),
      );
    }
    expect(results.slice(0, IP_LIMIT).map((result) => result.status)).toEqual(Array(IP_LIMIT).fill(201));
    expect(results[IP_LIMIT]!.status).toBe(429);
    expect(results[IP_LIMIT]!.json.code).toBe('rate_limited');
    expect(Number(results[IP_LIMIT]!.headers.get('retry-after'))).toBeGreaterThan(0);
    // another address is not affected
    expect(
      (
        await http(app.url, 'POST', '/v1/auth/signup', {
          json: { email: uniqueEmail('ipl'), password: STRONG_PASSWORD },
          headers: from('192.0.2.2'),
        })
      ).status,
    ).toBe(201);
  });

  it('failed refreshes count toward AUTH_IP_LIMIT; beyond it they are 429', async () => {
    const statuses = [];
    for (let i = 0; i <= IP_LIMIT; i++) {
      statuses.push(
        (
          await http(app.url, 'POST', '/v1/auth/refresh', {
            json: { refresh_token: `bogus-${i}-${'x'.repeat(40)}` },
            headers: from('192.0.2.3'),
          })
        ).status,
      );
    }
    expect(statuses).toEqual([...Array(IP_LIMIT).fill(401), 429]);
  });

  it('sign-up, verify-email, forgot, reset and token share one AUTH_IP_LIMIT counter, admitted by the throttler guard without its X-RateLimit headers', async () => {
    const headers = from('192.0.2.5');
    const calls = [
      () => http(app.url, 'POST', '/v1/auth/signup', { json: { email: uniqueEmail('ipl'), password: STRONG_PASSWORD }, headers }),
      () => http(app.url, 'POST', '/v1/auth/verify-email', { json: { token: 'x'.repeat(43) }, headers }),
      () => http(app.url, 'POST', '/v1/auth/forgot', { json: { email: uniqueEmail('ipl') }, headers }),
      () => http(app.url, 'POST', '/v1/auth/reset', { json: { token: 'x'.repeat(43), new_password: STRONG_PASSWORD }, headers }),
      () =>
        http(app.url, 'POST', '/v1/auth/token', {
          json: { grant_type: 'client_credentials', client_id: 'nobody', client_secret: 'x' },
          headers,
        }),
    ];
    const results = [];
    for (const call of calls) results.push(await call());
    for (const result of results.slice(0, IP_LIMIT)) {
      expect(result.status, result.text).not.toBe(429);
      expect([...result.headers.keys()].filter((name) => name.startsWith('x-ratelimit'))).toEqual([]);
    }
    const refused = results[IP_LIMIT]!;
    expect(refused.status).toBe(429);
    expect(refused.json.code).toBe('rate_limited');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect([...refused.headers.keys()].filter((name) => name.startsWith('x-ratelimit') || name.startsWith('retry-after-'))).toEqual([]);
  });

  it('parallel calls from one address are counted exactly: AUTH_IP_LIMIT admitted, the rest 429', async () => {
    const headers = from('192.0.2.6');
    const statuses = await Promise.all(
      Array.from(
        { length: 3 * IP_LIMIT },
        async () => (await http(app.url, 'POST', '/v1/auth/forgot', { json: { email: uniqueEmail('ipl') }, headers })).status,
      ),
    );
    expect(statuses.filter((status) => status === 202)).toHaveLength(IP_LIMIT);
    expect(statuses.filter((status) => status === 429)).toHaveLength(2 * IP_LIMIT);
  });

  it("AUTH_IP_LIMIT is one counter for every replica: a second app on the same database admits only what is left, with the window's Retry-After", async () => {
    const second = await bootApp({
      DATABASE_URL: db.url,
      MASTER_KEY: Buffer.alloc(32, 29).toString('base64'),
      AUTH_IP_LIMIT: String(IP_LIMIT),
      AUTH_WINDOW: '600',
      TRUST_PROXY: '127.0.0.1',
    });
    try {
      const headers = from('192.0.2.9');
      const statuses = await Promise.all(
        Array.from({ length: 3 * IP_LIMIT }, async (_, index) => {
          const url = index % 2 === 0 ? app.url : second.url;
          return (await http(url, 'POST', '/v1/auth/forgot', { json: { email: uniqueEmail('ipr') }, headers })).status;
        }),
      );
      expect(statuses.filter((status) => status === 202)).toHaveLength(IP_LIMIT);
      const refused = await http(second.url, 'POST', '/v1/auth/forgot', { json: { email: uniqueEmail('ipr') }, headers });
      expect(refused.status).toBe(429);
      // the shared fixed window (AUTH_WINDOW 600 s on this replica), not a per-replica token bucket's refill time
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(500);
    } finally {
      await second.close();
    }
  });

  it('admin mutations beyond ADMIN_WRITE_LIMIT per principal are 429; reads are not counted', async () => {
    const signin = await http(app.url, 'POST', '/v1/auth/signin', {
      json: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD },
      headers: from('192.0.2.4'),
    });
    expect(signin.status, signin.text).toBe(200);
    const token = signin.json.access_token as string;
    const statuses = [];
    for (let i = 0; i <= ADMIN_WRITES; i++) {
      statuses.push((await http(app.url, 'POST', '/admin/tenants', { token, json: { id: `aw-${i}`, name: 'x' } })).status);
      expect((await http(app.url, 'GET', '/admin/tenants', { token })).status).toBe(200);
    }
    expect(statuses).toEqual([...Array(ADMIN_WRITES).fill(201), 429]);
    expect((await http(app.url, 'GET', '/admin/tenants/aw-3', { token })).status).toBe(404);
    const metrics = (await http(app.url, 'GET', '/metrics')).text;
    expect(metrics).toMatch(/gatehouse_rate_limited_total\{scope="ip",route_class="auth"\} [1-9]/);
    expect(metrics).toMatch(/gatehouse_rate_limited_total\{scope="principal",route_class="admin"\} [1-9]/);
  });
});
