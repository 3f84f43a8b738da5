import { randomBytes } from 'node:crypto';
import nodeHttp from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_EMAIL, ADMIN_PASSWORD, createTenant, signinAdmin, userWithRole } from '../support/admin-fixtures';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { http } from '../support/http';
import { spawnGatehouse, waitFor, type GatehouseProcess } from '../support/process';
import { NATS_URL, servicesAvailable } from '../support/services';

const available = servicesAvailable({ postgres: true, nats: true });
const MASTER_KEY = Buffer.alloc(32, 31).toString('base64');
const PROBES = 4;

/** One request on a connection of its own: the replica's primary hands connections to its workers in turn. */
function probe(base: string, path: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = nodeHttp.request(`${base}${path}`, { agent: false, headers }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode!));
    });
    request.on('error', reject);
    request.end();
  });
}

interface LogLine {
  worker?: number;
  msg?: string;
  route?: string;
  status?: number;
  principal_id?: string | null;
}

describe.skipIf(!available)('WORKERS=2: one replica, two processes, the same guarantees in each', () => {
  let db: TestDatabase;
  let gatehouse: GatehouseProcess;
  let adminToken: string;

  const lines = (): LogLine[] =>
    gatehouse
      .logs()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as LogLine);

  /** Probes on fresh connections until `expected` comes back from every one of them; the elapsed ms. */
  const untilEveryWorkerAnswers = (path: string, headers: Record<string, string>, expected: number) =>
    waitFor(async () => {
      const statuses = [];
      for (let i = 0; i < PROBES; i += 1) statuses.push(await probe(gatehouse.url, path, headers));
      return statuses.every((status) => status === expected);
    }, 1000);

  /** Waits (lines are written in batches) until both workers logged `status` on `route` for `principal` (null: unauthenticated). */
  const bothWorkersLogged = (route: string, principal: string | null, status: number) =>
    waitFor(() => {
      const matching = lines().filter(
        (line) => line.route === route && (line.principal_id ?? null) === principal && line.status === status,
      );
      return new Set(matching.map((line) => line.worker)).size === 2;
    }, 5000);

  beforeAll(async () => {
    db = await createTestDatabase();
    gatehouse = await spawnGatehouse(
      {
        DATABASE_URL: db.url,
        NATS_URL,
        ROUTING_KV_BUCKET: `workers_${randomBytes(4).toString('hex')}`,
        MASTER_KEY,
        WORKERS: '2',
        BOOTSTRAP_ADMIN_EMAIL: ADMIN_EMAIL,
        BOOTSTRAP_ADMIN_PASSWORD: ADMIN_PASSWORD,
        AUTH_IP_LIMIT: '100000',
        // the request lines are how the test sees which process answered
        LOG_LEVEL: 'info',
      },
      'workers',
      { startTimeoutMs: 120_000 },
    );
    await waitFor(() => gatehouse.logs().includes('gatehouse replica serving with workers'), 120_000, 100);
    adminToken = await signinAdmin(gatehouse.url);
  });
  afterAll(async () => {
    await gatehouse?.stop();
    await db?.drop();
  });

  it('serves with two processes, each writing its own request lines', async () => {
    for (let i = 0; i < PROBES; i += 1) expect(await probe(gatehouse.url, '/health', {})).toBe(200);
    await waitFor(
      () =>
        new Set(
          lines()
            .filter((line) => line.msg === 'request')
            .map((line) => line.worker),
        ).size === 2,
      5000,
    );
  });

  it('a revoked session stops working in both processes within 1 s', async () => {
    const signin = await http(gatehouse.url, 'POST', '/v1/auth/signin', { json: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } });
    expect(signin.status, signin.text).toBe(200);
    const token = signin.json.access_token as string;
    const principal = signin.json.user.id as string;
    const bearer = { authorization: `Bearer ${token}` };
    await untilEveryWorkerAnswers('/v1/auth/me', bearer, 200);
    await bothWorkersLogged('/v1/auth/me', principal, 200);

    const revoked = await http(gatehouse.url, 'DELETE', `/v1/auth/sessions/${signin.json.session_id}`, { token: adminToken });
    expect(revoked.status, revoked.text).toBe(204);
    await untilEveryWorkerAnswers('/v1/auth/me', bearer, 401);
    // a refused token names no principal in the log line
    await bothWorkersLogged('/v1/auth/me', null, 401);
  });

  it('an authorization change reaches both processes within 1 s', async () => {
    const tenant = `w-${randomBytes(3).toString('hex')}`;
    await createTenant(gatehouse.url, adminToken, tenant);
    const admin = await userWithRole(gatehouse.url, adminToken, tenant, 'tenant_admin');
    const asTenantAdmin = { authorization: `Bearer ${admin.accessToken}`, 'x-tenant-id': tenant };
    await untilEveryWorkerAnswers('/admin/users', asTenantAdmin, 200);
    await bothWorkersLogged('/admin/users', admin.userId, 200);

    const removed = await http(gatehouse.url, 'DELETE', `/admin/assignments/${admin.assignmentId}`, { token: adminToken });
    expect(removed.status, removed.text).toBe(204);
    await untilEveryWorkerAnswers('/admin/users', asTenantAdmin, 403);
    // the refusal's line carries the deny reason; only this test is refused on /admin/users
    await bothWorkersLogged('/admin/users', null, 403);
  });

  it('answers /metrics for the whole replica', async () => {
    const before = await http(gatehouse.url, 'GET', '/metrics');
    expect(before.status).toBe(200);
    const count = (text: string) =>
      text
        .split('\n')
        .filter((line) => line.startsWith('gatehouse_http_requests_total{') && line.includes('route="/health"'))
        .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
    const initial = count(before.text);
    for (let i = 0; i < 6; i += 1) expect(await probe(gatehouse.url, '/health', {})).toBe(200);
    // whichever process answers the scrape, it counts the requests both served
    for (let i = 0; i < 2; i += 1) {
      const scrape = await new Promise<string>((resolve, reject) => {
        nodeHttp
          .get(`${gatehouse.url}/metrics`, { agent: false }, (response) => {
            let text = '';
            response.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
            response.on('end', () => resolve(text));
          })
          .on('error', reject);
      });
      expect(count(scrape) - initial).toBeGreaterThanOrEqual(6);
      expect(scrape).toMatch(/^gatehouse_build_info\{[^}]*\} 1$/m);
    }
  });
});
