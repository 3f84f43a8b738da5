import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, type TestApp } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { fakeHttp, type FakeHttp } from '../support/fake-upstreams';
import { http } from '../support/http';
import { waitFor } from '../support/process';
import { servicesAvailable } from '../support/services';
import { startPrivateNats, type PrivateNats } from './support/private-nats';
import { privateServersAvailable } from './support/private-servers';

const available = servicesAvailable({ postgres: true }) && privateServersAvailable('limits on two replicas', { nats: true });
const ADMIN_EMAIL = 'limits-pair@example.com';
const ADMIN_PASSWORD = 'bootstrap admin password 123';
const RATE = 30; // per second, service-wide, per (tenant, route class)
// a second of rate: callers on a loaded machine stall now and then, and a bucket that is full
// between their calls does not fill further (each replica holds half of it)
const BURST = 30;
const RUN_MS = 3000;
const TENANTS = ['even', 'one', 'cut', 'resumed', 'override'];

/** Within ±10 % or ± the burst, whichever is larger: CONTRACT §9's bound for two replicas. */
function expectNear(actual: number, expected: number, burst: number): void {
  const slack = Math.max(expected * 0.1, burst);
  const message = `admitted ${actual}, expected ${expected.toFixed(1)} ± ${slack.toFixed(1)}`;
  console.log(`limits pair: ${message}`);
  expect(actual, message).toBeGreaterThanOrEqual(expected - slack);
  expect(actual, message).toBeLessThanOrEqual(expected + slack);
}

/**
 * The shared budget of CONTRACT §9 across two replicas (both in this process, one private
 * nats-server so the NATS cut touches nobody else): the calls admitted in a timed run are one
 * replica's, whether the traffic is spread or all on one replica, and each falls back to half
 * of the budget while NATS is down.
 */
describe.skipIf(!available)('traffic limits hold for the service across two replicas (CONTRACT §9)', () => {
  let db: TestDatabase;
  let nats: PrivateNats;
  let projection: FakeHttp;
  let a: TestApp;
  let b: TestApp;
  let token: string;

  beforeAll(async () => {
    [db, nats, projection] = await Promise.all([createTestDatabase(), startPrivateNats(), fakeHttp('proj-pair')]);
    const routing = {
      aggregate: { placement: {}, shards: {} },
      projection: { placement: Object.fromEntries(TENANTS.map((tenant) => [tenant, 'p1'])), shards: { p1: [projection.endpoint] } },
      runner: { placement: {}, shards: {} },
    };
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gh-limits-pair-')), 'routing.json');
    fs.writeFileSync(file, JSON.stringify(routing));
    const env = {
      DATABASE_URL: db.url,
      NATS_URL: nats.url,
      ROUTING_KV_BUCKET: `limits_${randomBytes(4).toString('hex')}`,
      ROUTING_FILE: file,
      MASTER_KEY: Buffer.alloc(32, 17).toString('base64'),
      BOOTSTRAP_ADMIN_EMAIL: ADMIN_EMAIL,
      BOOTSTRAP_ADMIN_PASSWORD: ADMIN_PASSWORD,
      AUTH_IP_LIMIT: '100000',
      TENANT_RATE_LIMIT: `${RATE}/1s`,
      TENANT_RATE_BURST: String(BURST),
      PRINCIPAL_RATE_LIMIT: '0',
      IP_IN_FLIGHT_LIMIT: '0',
    };
    a = await bootApp(env);
    b = await bootApp(env);
    const signin = await http(a.url, 'POST', '/v1/auth/signin', { json: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } });
    expect(signin.status, signin.text).toBe(200);
    token = signin.json.access_token;
    for (const tenant of TENANTS) {
      expect((await http(a.url, 'POST', '/admin/tenants', { token, json: { id: tenant, name: tenant } })).status).toBe(201);
    }
  }, 60_000);
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await projection?.stop();
    await nats?.destroy();
    await db?.drop();
  });

  /** Loops calling as fast as they are answered, one per entry of `bases`, for RUN_MS; `sentAt`: each call's start, ms into the run. */
  async function run(tenant: string, bases: string[]): Promise<{ admitted: number; elapsedS: number; attempts: number; sentAt: number[] }> {
    const started = Date.now();
    let admitted = 0;
    let attempts = 0;
    const sentAt: number[] = [];
    await Promise.all(
      bases.map(async (base) => {
        while (Date.now() - started < RUN_MS) {
          attempts++;
          sentAt.push(Date.now() - started);
          const result = await http(base, 'POST', '/v1/query/orders', { json: {}, token, headers: { 'x-tenant-id': tenant } });
          if (result.status === 200) admitted++;
          else expect(result.status, result.text).toBe(429);
        }
      }),
    );
    return { admitted, elapsedS: (Date.now() - started) / 1000, attempts, sentAt: sentAt.sort((x, y) => x - y) };
  }

  /**
   * What the service-wide budget admits of the calls as they were sent: a token bucket of
   * `share` of BURST refilled at `share` of RATE, starting with half a burst (a key new to a
   * replica starts at 1/n of the live replicas, SharedBudget.initialShare; spread over both,
   * the two halves make one burst: `initial` BURST). Against the calls' own send times, not
   * RATE × the run's length: on a loaded machine (this process holds both replicas and the
   * client) a stall of a second sends nothing while the bucket is full, and the last answers
   * come late, and neither is the limiter's doing.
   */
  function budgetFor(sentAt: number[], share: number, initial = (BURST * share) / 2): number {
    const capacity = BURST * share;
    const perMs = (RATE * share) / 1000;
    let tokens = initial;
    let at = 0;
    let admitted = 0;
    for (const sent of sentAt) {
      tokens = Math.min(capacity, tokens + (sent - at) * perMs);
      at = sent;
      if (tokens >= 1) {
        tokens -= 1;
        admitted++;
      }
    }
    return admitted;
  }
  const upstreamCalls = (tenant: string) => projection.calls.filter((call) => call.headers['x-tenant-id'] === tenant).length;
  const natsCheck = async (app: TestApp) => ((await http(app.url, 'GET', '/ready')).json as { checks: { nats: string } }).checks.nats;

  it('spread evenly over both replicas: one replica’s admissions, and the upstream saw exactly those', async () => {
    const { admitted, attempts, sentAt } = await run('even', [a.url, b.url, a.url, b.url, a.url, b.url]);
    expect(attempts).toBeGreaterThan(admitted * 1.5);
    expectNear(admitted, budgetFor(sentAt, 1, BURST), BURST);
    expect(upstreamCalls('even')).toBe(admitted);
  });

  it('all sent to one replica: still one replica’s admissions (it borrows the other’s share)', async () => {
    const { admitted, attempts, sentAt } = await run('one', [a.url, a.url, a.url, a.url, a.url, a.url]);
    expect(attempts).toBeGreaterThan(admitted * 1.5);
    expectNear(admitted, budgetFor(sentAt, 1), BURST);
    expect(upstreamCalls('one')).toBe(admitted);
  });

  it('a tenant override set on replica A is in force on B within 1 s', async () => {
    const put = await http(a.url, 'PUT', '/admin/tenants/override/limits', { token, json: { rate: '1/1m', burst: 1 } });
    expect(put.status, put.text).toBe(200);
    const started = Date.now();
    await waitFor(async () => (await http(b.url, 'GET', '/admin/tenants/override/limits', { token })).json.source === 'override', 1000, 20);
    // B admits one call, then refuses with the override's policy
    let refused;
    await waitFor(
      async () => {
        const result = await http(b.url, 'POST', '/v1/query/orders', { json: {}, token, headers: { 'x-tenant-id': 'override' } });
        if (result.status === 429) refused = result;
        return result.status === 429;
      },
      1000,
      10,
    );
    expect(Date.now() - started).toBeLessThan(1500);
    expect((refused as unknown as { headers: Headers }).headers.get('ratelimit-policy')).toBe('"tenant";q=1;w=60');
  });

  it('NATS cut: each replica limits at its fallback share (half); after reconnect the shared budget resumes', async () => {
    await nats.stop();
    try {
      await waitFor(async () => (await natsCheck(a)) === 'failing' && (await natsCheck(b)) === 'failing', 15_000, 50);
      const cut = await run('cut', [a.url, a.url, a.url, a.url, a.url, a.url]);
      expect(cut.attempts).toBeGreaterThan(cut.admitted * 1.5);
      // the fallback bucket starts full at its half (limit × 1/replicas)
      expectNear(cut.admitted, budgetFor(cut.sentAt, 0.5, BURST / 2), BURST);
      expect(upstreamCalls('cut')).toBe(cut.admitted);
    } finally {
      await nats.start();
    }
    await waitFor(async () => (await natsCheck(a)) === 'ok' && (await natsCheck(b)) === 'ok', 15_000, 50);
    // one report interval each way, with room for a loaded machine
    await new Promise((resolve) => setTimeout(resolve, 500));
    const resumed = await run('resumed', [a.url, a.url, a.url, a.url, a.url, a.url]);
    // refused calls: the bucket, not the client’s pace, set the count (the fallback half would admit ~45 fewer)
    expect(resumed.attempts).toBeGreaterThan(resumed.admitted * 1.5);
    expectNear(resumed.admitted, budgetFor(resumed.sentAt, 1), BURST);
    expect(upstreamCalls('resumed')).toBe(resumed.admitted);
  }, 60_000);
});
