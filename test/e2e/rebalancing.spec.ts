import type { KV } from '@nats-io/kv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_EMAIL, ADMIN_PASSWORD, createTenant, inTenant, signinAdmin, userWithRole } from '../support/admin-fixtures';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { WebSocket, fakeAggregate, fakeHttp, type FakeAggregate, type FakeHttp } from '../support/fake-upstreams';
import { decodeJwtPart, http } from '../support/http';
import { freePort, spawnGatehouse, waitFor, type GatehouseProcess } from '../support/process';
import { spawnRoutedReplicaPair, writeRoutingFile, type RoutedReplicaPair } from '../support/replicas';
import { servicesAvailable } from '../support/services';

const available = servicesAvailable({ postgres: true, nats: true });
const MASTER_KEY = Buffer.alloc(32, 35).toString('base64');
const PLAN_KEYS = [
  'applied_at',
  'checks',
  'created_at',
  'from_shard',
  'id',
  'persisted',
  'placement_revision',
  'rolled_back_at',
  'service_kind',
  'status',
  'target_shard',
  'tenant_id',
];

async function openSubscription(base: string, token: string, tenant: string): Promise<WebSocket> {
  const socket = new WebSocket(`${base.replace('http', 'ws')}/v1/subscribe/orders`, {
    headers: { authorization: `Bearer ${token}`, ...inTenant(tenant) },
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  return socket;
}

async function echo(socket: WebSocket, text: string): Promise<string> {
  const reply = new Promise<string>((resolve) => socket.once('message', (data) => resolve(data.toString())));
  socket.send(text);
  return reply;
}

describe.skipIf(!available)('rebalancing a tenant between shards across two replicas (CONTRACT §11)', () => {
  let db: TestDatabase;
  let a: GatehouseProcess;
  let b: GatehouseProcess;
  let pair: RoutedReplicaPair;
  let kv: KV;
  let one: FakeHttp;
  let twoA: FakeHttp;
  let twoB: FakeHttp;
  let aggOne: FakeAggregate;
  let aggTwo: FakeAggregate;
  let deadPort: number;
  let token: string;

  const servedBy = async (base: string, tenant = 'acme') => {
    const result = await http(base, 'POST', '/v1/query/orders', { token, json: {}, headers: inTenant(tenant) });
    return result.status === 200 ? (result.json.served_by as string) : `status ${result.status}`;
  };
  const onShard = async (shard: 'one' | 'two', tenant = 'acme') => {
    const served = await Promise.all([a, b].map((replica) => servedBy(replica.url, tenant)));
    return served.every((name) => name.startsWith(`shard-${shard}`));
  };
  const placement = async (kind = 'projection') => {
    const entry = await kv.get(`${kind}.placement`);
    return { value: entry!.json<Record<string, string>>(), revision: entry!.revision };
  };
  const auditRows = async (planId: string) =>
    (await db.query(`SELECT action, tenant_id, changes FROM audit_records WHERE target_id = $1 ORDER BY seq`, [planId])).rows;
  const plan = (base: string, body: object) => http(base, 'POST', '/admin/rebalancing/plans', { token, json: body });

  beforeAll(async () => {
    deadPort = await freePort();
    [one, twoA, twoB, aggOne, aggTwo] = await Promise.all([
      fakeHttp('shard-one'),
      fakeHttp('shard-two-a'),
      fakeHttp('shard-two-b'),
      fakeAggregate('agg-one'),
      fakeAggregate('agg-two'),
    ]);
    pair = await spawnRoutedReplicaPair(
      'rebalancing',
      {
        projection: {
          placement: { '*': 'one', pinned: 'one' },
          shards: { one: [one.endpoint], two: [twoA.endpoint, twoB.endpoint], dead: [`127.0.0.1:${deadPort}`] },
        },
        aggregate: { placement: { '*': 'one' }, shards: { one: [aggOne.endpoint], two: [aggTwo.endpoint] } },
      },
      { MASTER_KEY, BOOTSTRAP_ADMIN_EMAIL: ADMIN_EMAIL, BOOTSTRAP_ADMIN_PASSWORD: ADMIN_PASSWORD },
    );
    ({ db, a, b, kv } = pair);
    token = await signinAdmin(a.url);
    for (const tenant of ['acme', 'globex', 'initech', 'pinned']) await createTenant(a.url, token, tenant);
  });
  afterAll(async () => {
    await pair?.stop();
    await Promise.all([one?.stop(), twoA?.stop(), twoB?.stop(), aggOne?.stop(), aggTwo?.stop()]);
  });

  it('plan → apply refused while not ready → ready → apply (both replicas, 1012, in-flight kept) → rollback, every step audited', async () => {
    twoB.readiness.tenants.acme = { ready: false, reason: 'projection lag', lag: 1200 };
    const before = await placement();

    const created = await plan(a.url, { service_kind: 'projection', tenant_id: 'acme', target_shard: 'two' });
    expect(created.status, created.text).toBe(201);
    expect(Object.keys(created.json).sort()).toEqual(PLAN_KEYS);
    expect(created.json).toMatchObject({
      service_kind: 'projection',
      tenant_id: 'acme',
      from_shard: 'one',
      target_shard: 'two',
      status: 'planned',
      placement_revision: before.revision,
      persisted: true,
      applied_at: null,
    });
    expect(created.json.checks).toEqual([
      { endpoint: twoA.endpoint, ready: true, reason: null },
      { endpoint: twoB.endpoint, ready: false, reason: 'projection lag', lag: 1200 },
    ]);
    // asked with the internal token of §7, for this tenant
    const asked = twoB.calls.find((call) => call.url === '/v1/readiness/acme')!;
    const claims = decodeJwtPart(asked.headers.authorization!.replace('Bearer ', ''), 1);
    expect(claims).toMatchObject({ aud: 'projection', tenant_id: 'acme' });
    const planId = created.json.id as string;

    const denied = await http(b.url, 'POST', `/admin/rebalancing/plans/${planId}/apply`, { token });
    expect(denied.status, denied.text).toBe(409);
    expect(denied.headers.get('content-type')).toContain('application/problem+json');
    expect(denied.json).toMatchObject({ code: 'target_not_ready', status: 409 });
    expect(denied.json.checks).toEqual([
      { endpoint: twoA.endpoint, ready: true, reason: null },
      { endpoint: twoB.endpoint, ready: false, reason: 'projection lag', lag: 1200 },
    ]);
    expect(await placement()).toEqual(before);
    expect(await onShard('one')).toBe(true);
    expect((await http(a.url, 'GET', `/admin/rebalancing/plans/${planId}`, { token })).json.status).toBe('planned');

    // ready now; a subscription on replica b and a slow query in flight on the old shard
    delete twoB.readiness.tenants.acme;
    const socket = await openSubscription(b.url, token, 'acme');
    expect(await echo(socket, 'before')).toBe('shard-one:before');
    const closed = new Promise<{ code: number; at: number }>((resolve) =>
      socket.once('close', (code) => resolve({ code, at: Date.now() })),
    );
    one.state.delayMs = 600;
    const callsBefore = one.calls.length;
    const inFlight = servedBy(a.url);
    await waitFor(() => one.calls.length > callsBefore, 2000);

    const applied = await http(a.url, 'POST', `/admin/rebalancing/plans/${planId}/apply`, { token });
    const appliedAt = Date.now();
    expect(applied.status, applied.text).toBe(200);
    await waitFor(() => onShard('two'), 1000, 20);
    expect(Date.now() - appliedAt).toBeLessThanOrEqual(1000);
    const close = await closed;
    expect(close.code).toBe(1012);
    expect(close.at - appliedAt).toBeLessThanOrEqual(1000);
    expect(await inFlight).toBe('shard-one');
    one.state.delayMs = 0;
    expect(Object.keys(applied.json).sort()).toEqual(PLAN_KEYS);
    expect(applied.json).toMatchObject({ id: planId, status: 'applied', from_shard: 'one', target_shard: 'two', persisted: true });
    expect(applied.json.checks.every((check: { ready: boolean }) => check.ready)).toBe(true);
    const moved = await placement();
    expect(moved.value).toEqual({ ...before.value, acme: 'two' });

    const again = await openSubscription(b.url, token, 'acme');
    expect(await echo(again, 'after')).toMatch(/^shard-two-[ab]:after$/);
    const againClosed = new Promise<number>((resolve) => again.once('close', (code) => resolve(code)));

    const rolledBack = await http(b.url, 'POST', `/admin/rebalancing/plans/${planId}/rollback`, { token });
    const rolledBackAt = Date.now();
    expect(rolledBack.status, rolledBack.text).toBe(200);
    expect(rolledBack.json).toMatchObject({ id: planId, status: 'rolled_back' });
    await waitFor(() => onShard('one'), 1000, 20);
    expect(Date.now() - rolledBackAt).toBeLessThanOrEqual(1000);
    expect(await againClosed).toBe(1012);
    // acme came from the `*` default: its entry is removed, not pinned to one
    expect((await placement()).value).toEqual(before.value);

    const rows = await auditRows(planId);
    expect(rows.map((row) => row.action)).toEqual([
      'rebalancing.plan',
      'rebalancing.apply_denied',
      'rebalancing.apply',
      'rebalancing.rollback',
    ]);
    expect(rows.every((row) => row.tenant_id === 'acme')).toBe(true);
    expect(rows[1].changes.checks).toEqual(denied.json.checks);
    expect(rows[2].changes).toMatchObject({ from_shard: 'one', target_shard: 'two', persisted: true });
    expect(rows[3].changes).toMatchObject({ restored_entry: null });

    const metrics = await http(a.url, 'GET', '/metrics');
    expect(metrics.text).toContain('gatehouse_rebalancing_total{service_kind="projection",outcome="applied"} 1');
    expect(metrics.text).toContain('gatehouse_rebalancing_total{service_kind="projection",outcome="planned"} 1');
    const metricsB = await http(b.url, 'GET', '/metrics');
    expect(metricsB.text).toContain('gatehouse_rebalancing_total{service_kind="projection",outcome="not_ready"} 1');
    expect(metricsB.text).toContain('gatehouse_rebalancing_total{service_kind="projection",outcome="rolled_back"} 1');
  });

  it('two concurrent applies of conflicting plans: exactly one wins, the other and every later apply get 409 conflict', async () => {
    const first = await plan(a.url, { service_kind: 'projection', tenant_id: 'globex', target_shard: 'two' });
    const second = await plan(b.url, { service_kind: 'projection', tenant_id: 'globex', target_shard: 'two' });
    expect([first.status, second.status]).toEqual([201, 201]);
    const results = await Promise.all([
      http(a.url, 'POST', `/admin/rebalancing/plans/${first.json.id}/apply`, { token }),
      http(b.url, 'POST', `/admin/rebalancing/plans/${second.json.id}/apply`, { token }),
    ]);
    expect(results.map((result) => result.status).sort()).toEqual([200, 409]);
    const loser = results.find((result) => result.status === 409)!;
    expect(loser.json.code).toBe('conflict');
    const winnerId = results[0]!.status === 200 ? first.json.id : second.json.id;
    const loserId = winnerId === first.json.id ? second.json.id : first.json.id;
    expect((await placement()).value.globex).toBe('two');

    // after the winner is rolled back the tenant is on `one` again, yet the other plan is stale
    expect((await http(a.url, 'POST', `/admin/rebalancing/plans/${winnerId}/rollback`, { token })).status).toBe(200);
    const stale = await http(a.url, 'POST', `/admin/rebalancing/plans/${loserId}/apply`, { token });
    expect(stale.status, stale.text).toBe(409);
    expect(stale.json.code).toBe('conflict');
    expect((await placement()).value.globex).toBeUndefined();
    // applying or rolling back twice is a conflict too
    expect((await http(b.url, 'POST', `/admin/rebalancing/plans/${winnerId}/rollback`, { token })).status).toBe(409);
    expect((await http(b.url, 'POST', `/admin/rebalancing/plans/${winnerId}/apply`, { token })).status).toBe(409);
  });

  it('applies when only other tenants changed since the plan, rolls a pinned tenant back to its pin', async () => {
    const created = await plan(a.url, { service_kind: 'projection', tenant_id: 'pinned', target_shard: 'two' });
    expect(created.status, created.text).toBe(201);
    const current = await placement();
    const write = await http(a.url, 'PUT', '/admin/routing/projection/placement', {
      token,
      json: { ...current.value, initech: 'two' },
      headers: { 'if-match': String(current.revision) },
    });
    expect(write.status, write.text).toBe(200);
    expect(created.json.placement_revision).toBeLessThan((await placement()).revision);
    const applied = await http(b.url, 'POST', `/admin/rebalancing/plans/${created.json.id}/apply`, { token });
    expect(applied.status, applied.text).toBe(200);
    expect((await placement()).value).toMatchObject({ pinned: 'two', initech: 'two' });
    // someone moves the tenant by hand: rollback refuses rather than undo their change
    const moved = await placement();
    await kv.update('projection.placement', JSON.stringify({ ...moved.value, pinned: 'dead' }), moved.revision);
    const refused = await http(a.url, 'POST', `/admin/rebalancing/plans/${created.json.id}/rollback`, { token });
    expect(refused.status, refused.text).toBe(409);
    const back = await placement();
    await kv.update('projection.placement', JSON.stringify({ ...back.value, pinned: 'two' }), back.revision);
    await waitFor(async () => (await servedBy(a.url, 'pinned')).startsWith('shard-two'), 2000);
    const rolledBack = await http(a.url, 'POST', `/admin/rebalancing/plans/${created.json.id}/rollback`, { token });
    expect(rolledBack.status, rolledBack.text).toBe(200);
    expect((await placement()).value.pinned).toBe('one');
  });

  it('asks aggregate nodes with the gRPC health service; an unreachable endpoint is not ready', async () => {
    aggTwo.health.tenants.initech = 'NOT_SERVING';
    const created = await plan(a.url, { service_kind: 'aggregate', tenant_id: 'initech', target_shard: 'two' });
    expect(created.status, created.text).toBe(201);
    expect(created.json.checks).toEqual([{ endpoint: aggTwo.endpoint, ready: false, reason: 'NOT_SERVING' }]);
    const check = aggTwo.healthChecks.at(-1)!;
    expect(check.service).toBe('aggregate.tenant.initech');
    expect(decodeJwtPart(check.metadata.authorization!.replace('Bearer ', ''), 1)).toMatchObject({
      aud: 'aggregate',
      tenant_id: 'initech',
    });
    const denied = await http(a.url, 'POST', `/admin/rebalancing/plans/${created.json.id}/apply`, { token });
    expect(denied.status).toBe(409);
    expect(denied.json.code).toBe('target_not_ready');
    aggTwo.health.tenants.initech = 'SERVING';
    const applied = await http(a.url, 'POST', `/admin/rebalancing/plans/${created.json.id}/apply`, { token });
    expect(applied.status, applied.text).toBe(200);
    expect((await placement('aggregate')).value.initech).toBe('two');

    const toDead = await plan(b.url, { service_kind: 'projection', tenant_id: 'initech', target_shard: 'dead' });
    expect(toDead.status, toDead.text).toBe(201);
    expect(toDead.json.checks).toEqual([{ endpoint: `127.0.0.1:${deadPort}`, ready: false, reason: 'unreachable' }]);
  });

  it('refuses an unknown shard or the current one (400), unknown plans (404), and lists plans in the envelope', async () => {
    const unknown = await plan(a.url, { service_kind: 'projection', tenant_id: 'acme', target_shard: 'nowhere' });
    expect(unknown.status).toBe(400);
    expect(unknown.json).toMatchObject({ code: 'validation_failed', errors: [{ path: 'target_shard' }] });
    const current = await plan(a.url, { service_kind: 'projection', tenant_id: 'acme', target_shard: 'one' });
    expect(current.status).toBe(400);
    expect(current.json.code).toBe('validation_failed');
    const badKind = await plan(a.url, { service_kind: 'mailer', tenant_id: 'acme', target_shard: 'two' });
    expect(badKind.status).toBe(400);
    expect((await http(a.url, 'GET', '/admin/rebalancing/plans/0190aaaa-0000-7000-8000-000000000000', { token })).status).toBe(404);

    const firstPage = await http(b.url, 'GET', '/admin/rebalancing/plans?limit=2', { token });
    expect(firstPage.status).toBe(200);
    expect(firstPage.json.items).toHaveLength(2);
    expect(typeof firstPage.json.next_cursor).toBe('string');
    const rest = await http(b.url, 'GET', `/admin/rebalancing/plans?limit=200&cursor=${firstPage.json.next_cursor}`, { token });
    expect(rest.json.next_cursor).toBeNull();
    const ids = [...firstPage.json.items, ...rest.json.items].map((item: { id: string }) => item.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBeGreaterThanOrEqual(6);
  });

  it('refuses a tenant admin (403) on every rebalancing route', async () => {
    const admin = await userWithRole(a.url, token, 'acme', 'tenant_admin');
    const headers = inTenant('acme');
    const create = await http(a.url, 'POST', '/admin/rebalancing/plans', {
      token: admin.accessToken,
      headers,
      json: { service_kind: 'projection', tenant_id: 'acme', target_shard: 'two' },
    });
    expect(create.status, create.text).toBe(403);
    expect(create.json.code).toBe('forbidden');
    const list = await http(a.url, 'GET', '/admin/rebalancing/plans', { token: admin.accessToken, headers });
    expect(list.status).toBe(403);
    const some = (await http(a.url, 'GET', '/admin/rebalancing/plans?limit=1', { token })).json.items[0].id as string;
    for (const step of ['apply', 'rollback']) {
      const result = await http(a.url, 'POST', `/admin/rebalancing/plans/${some}/${step}`, { token: admin.accessToken, headers });
      expect(result.status, step).toBe(403);
    }
  });
});

describe.skipIf(!available)('rebalancing in single-node mode (no NATS): memory only, undone by a reload', () => {
  let db: TestDatabase;
  let gatehouse: GatehouseProcess;
  let one: FakeHttp;
  let two: FakeHttp;
  let token: string;

  beforeAll(async () => {
    [db, one, two] = await Promise.all([createTestDatabase(), fakeHttp('shard-one'), fakeHttp('shard-two')]);
    gatehouse = await spawnGatehouse(
      {
        DATABASE_URL: db.url,
        MASTER_KEY,
        ROUTING_FILE: writeRoutingFile('rebalancing-single', {
          projection: { placement: { '*': 'one' }, shards: { one: [one.endpoint], two: [two.endpoint] } },
        }),
        BOOTSTRAP_ADMIN_EMAIL: ADMIN_EMAIL,
        BOOTSTRAP_ADMIN_PASSWORD: ADMIN_PASSWORD,
        GRPC_PORT: '0',
        LOG_LEVEL: 'warn',
      },
      'rebalancing-single',
    );
    token = await signinAdmin(gatehouse.url);
    await createTenant(gatehouse.url, token, 'acme');
  });
  afterAll(async () => {
    await gatehouse?.stop();
    await Promise.all([one?.stop(), two?.stop()]);
    await db?.drop();
  });

  const servedBy = async () =>
    (await http(gatehouse.url, 'POST', '/v1/query/orders', { token, json: {}, headers: inTenant('acme') })).json.served_by as string;

  it('plans and applies against the in-memory table with persisted:false; POST /admin/routing/reload undoes it', async () => {
    const created = await http(gatehouse.url, 'POST', '/admin/rebalancing/plans', {
      token,
      json: { service_kind: 'projection', tenant_id: 'acme', target_shard: 'two' },
    });
    expect(created.status, created.text).toBe(201);
    expect(created.json).toMatchObject({ persisted: false, from_shard: 'one', status: 'planned' });
    const applied = await http(gatehouse.url, 'POST', `/admin/rebalancing/plans/${created.json.id}/apply`, { token });
    expect(applied.status, applied.text).toBe(200);
    expect(applied.json).toMatchObject({ status: 'applied', persisted: false });
    expect(await servedBy()).toBe('shard-two');
    const view = await http(gatehouse.url, 'GET', '/admin/routing', { token });
    expect(view.json).toMatchObject({ source: 'file', service_kinds: { projection: { placement: { acme: 'two' } } } });

    // routing writes work on the memory table too, with the same If-Match rule
    const revision = view.json.service_kinds.projection.revisions.placement as number;
    const stale = await http(gatehouse.url, 'PUT', '/admin/routing/projection/placement', {
      token,
      json: { '*': 'two' },
      headers: { 'if-match': String(revision - 1) },
    });
    expect(stale.status).toBe(412);

    const reload = await http(gatehouse.url, 'POST', '/admin/routing/reload', { token });
    expect(reload.status).toBe(200);
    await waitFor(async () => (await servedBy()) === 'shard-one', 2000);
    const after = await http(gatehouse.url, 'GET', '/admin/routing', { token });
    expect(after.json.service_kinds.projection.placement).toEqual({ '*': 'one' });
  });
});
