import type { KV } from '@nats-io/kv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_EMAIL, ADMIN_PASSWORD, createTenant, inTenant, signinAdmin, userWithRole } from '../support/admin-fixtures';
import type { TestDatabase } from '../support/database';
import { fakeHttp, type FakeHttp } from '../support/fake-upstreams';
import { http } from '../support/http';
import { waitFor, type GatehouseProcess } from '../support/process';
import { spawnRoutedReplicaPair, type RoutedReplicaPair } from '../support/replicas';
import { servicesAvailable } from '../support/services';

const available = servicesAvailable({ postgres: true, nats: true });
const MASTER_KEY = Buffer.alloc(32, 34).toString('base64');

describe.skipIf(!available)('routing writes through the API (PUT placement / shards with If-Match)', () => {
  let db: TestDatabase;
  let a: GatehouseProcess;
  let b: GatehouseProcess;
  let pair: RoutedReplicaPair;
  let bucket: string;
  let kv: KV;
  let one: FakeHttp;
  let two: FakeHttp;
  let token: string;

  const servedBy = async (base: string, tenant = 'acme') => {
    const result = await http(base, 'POST', '/v1/query/orders', { token, json: {}, headers: inTenant(tenant) });
    return result.status === 200 ? (result.json.served_by as string) : `status ${result.status}`;
  };
  const revisions = async () => (await http(a.url, 'GET', '/admin/routing', { token })).json.service_kinds.projection.revisions;
  const auditRows = async (action: string) =>
    (await db.query(`SELECT action, target_id, changes FROM audit_records WHERE action = $1 ORDER BY seq`, [action])).rows;

  beforeAll(async () => {
    [one, two] = await Promise.all([fakeHttp('shard-one'), fakeHttp('shard-two')]);
    pair = await spawnRoutedReplicaPair(
      'routing-writes',
      { projection: { placement: { '*': 'one' }, shards: { one: [one.endpoint] } } },
      { MASTER_KEY, BOOTSTRAP_ADMIN_EMAIL: ADMIN_EMAIL, BOOTSTRAP_ADMIN_PASSWORD: ADMIN_PASSWORD },
    );
    ({ db, a, b, kv, bucket } = pair);
    token = await signinAdmin(a.url);
    await createTenant(a.url, token, 'acme');
  });
  afterAll(async () => {
    await pair?.stop();
    await Promise.all([one?.stop(), two?.stop()]);
  });

  it('writes shards then placement with If-Match (bare and quoted), answers the routing view with an ETag, both replicas route within 1 s', async () => {
    const before = await revisions();
    const shards = await http(a.url, 'PUT', '/admin/routing/projection/shards', {
      token,
      json: { one: [one.endpoint], two: [two.endpoint] },
      headers: { 'if-match': String(before.shards) },
    });
    expect(shards.status, shards.text).toBe(200);
    const shardsRevision = (await kv.get('projection.shards'))!.revision;
    expect(shards.headers.get('etag')).toBe(`"${shardsRevision}"`);
    expect(shards.json.service_kinds.projection.shards).toEqual({ one: [one.endpoint], two: [two.endpoint] });
    expect(shards.json.service_kinds.projection.revisions.shards).toBe(shardsRevision);

    // warm both replicas (token check, upstream connections) so the timing below is the routing's
    for (const replica of [a, b]) expect(await servedBy(replica.url)).toBe('shard-one');
    const placement = await http(a.url, 'PUT', '/admin/routing/projection/placement', {
      token,
      json: { '*': 'one', acme: 'two' },
      headers: { 'if-match': `"${before.placement}"` },
    });
    const written = Date.now();
    expect(placement.status, placement.text).toBe(200);
    // in force on the replica that wrote it at once, on the other within 1 s
    expect(await servedBy(a.url)).toBe('shard-two');
    await waitFor(async () => (await servedBy(b.url)) === 'shard-two', 1000, 20);
    expect(Date.now() - written).toBeLessThanOrEqual(1000);
    const entry = await kv.get('projection.placement');
    expect(entry?.json()).toEqual({ '*': 'one', acme: 'two' });
    expect(placement.headers.get('etag')).toBe(`"${entry!.revision}"`);
    expect(placement.json).toMatchObject({ source: 'kv', bucket, service_kinds: { projection: { placement: { acme: 'two' } } } });

    const audited = await auditRows('routing.write');
    expect(audited.map((row) => row.target_id)).toEqual(['projection.shards', 'projection.placement']);
    expect(audited[1].changes).toMatchObject({
      key: 'projection.placement',
      previous_revision: before.placement,
      revision: entry!.revision,
      value: { '*': 'one', acme: 'two' },
    });
  });

  it('answers 412 conflict to a stale If-Match and 400 validation_failed without one, changing nothing', async () => {
    const current = await revisions();
    const stale = await http(b.url, 'PUT', '/admin/routing/projection/placement', {
      token,
      json: { '*': 'two' },
      headers: { 'if-match': String(current.placement - 1) },
    });
    expect(stale.status, stale.text).toBe(412);
    expect(stale.headers.get('content-type')).toContain('application/problem+json');
    expect(stale.json).toMatchObject({ code: 'conflict', status: 412, type: 'urn:gatehouse:error:conflict' });

    const missing = await http(b.url, 'PUT', '/admin/routing/projection/placement', { token, json: { '*': 'two' } });
    expect(missing.status, missing.text).toBe(400);
    expect(missing.json.code).toBe('validation_failed');
    expect(missing.json.errors[0].path).toBe('If-Match');

    const garbage = await http(b.url, 'PUT', '/admin/routing/projection/placement', {
      token,
      json: { '*': 'two' },
      headers: { 'if-match': 'W/"abc"' },
    });
    expect(garbage.status).toBe(400);
    expect(await revisions()).toEqual(current);
    expect(await servedBy(b.url, 'other')).toBe('shard-one');
  });

  it('validates like a KV change: unknown shard, bad tenant id, bad endpoint, unknown kind or part are 400', async () => {
    const current = await revisions();
    const cases: Array<[string, unknown, string]> = [
      ['/admin/routing/projection/placement', { acme: 'missing' }, 'projection.placement.acme'],
      ['/admin/routing/projection/placement', { 'Bad Tenant!': 'one' }, 'projection.placement'],
      ['/admin/routing/projection/shards', { one: ['http://not-an-endpoint/'] }, 'projection.shards.one'],
      ['/admin/routing/projection/shards', { one: [] }, 'projection.shards.one'],
      // removing a shard the placement still names
      ['/admin/routing/projection/shards', { one: [one.endpoint] }, 'projection.placement.acme'],
      ['/admin/routing/projection/placement', ['one'], 'projection.placement'],
    ];
    for (const [route, body, errorPath] of cases) {
      const result = await http(a.url, 'PUT', route, { token, json: body, headers: { 'if-match': String(current.placement) } });
      expect(result.status, `${route} ${JSON.stringify(body)}: ${result.text}`).toBe(400);
      expect(result.json.code).toBe('validation_failed');
      expect(result.json.errors.map((error: { path: string }) => error.path).join(' ')).toContain(errorPath);
    }
    for (const route of ['/admin/routing/mailer/placement', '/admin/routing/projection/tables']) {
      const result = await http(a.url, 'PUT', route, { token, json: {}, headers: { 'if-match': '1' } });
      expect(result.status, route).toBe(400);
    }
    expect(await revisions()).toEqual(current);
  });

  it('refuses a tenant admin (403) and an anonymous caller (401)', async () => {
    const admin = await userWithRole(a.url, token, 'acme', 'tenant_admin');
    const current = await revisions();
    const denied = await http(a.url, 'PUT', '/admin/routing/projection/placement', {
      token: admin.accessToken,
      json: { '*': 'two' },
      headers: { 'if-match': String(current.placement), ...inTenant('acme') },
    });
    expect(denied.status, denied.text).toBe(403);
    expect(denied.json.code).toBe('forbidden');
    const anonymous = await http(a.url, 'PUT', '/admin/routing/projection/placement', {
      json: { '*': 'two' },
      headers: { 'if-match': String(current.placement) },
    });
    expect(anonymous.status).toBe(401);
    expect(await revisions()).toEqual(current);
  });
});
