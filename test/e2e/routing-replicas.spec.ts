import type { KV } from '@nats-io/kv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, fakeHttp, type FakeHttp } from '../support/fake-upstreams';
import { http } from '../support/http';
import { waitFor, type GatehouseProcess } from '../support/process';
import { spawnRoutedReplicaPair, type RoutedReplicaPair } from '../support/replicas';
import { servicesAvailable } from '../support/services';

const available = servicesAvailable({ postgres: true, nats: true });
const MASTER_KEY = Buffer.alloc(32, 33).toString('base64');
const ADMIN_EMAIL = 'routing-root@example.com';
const ADMIN_PASSWORD = 'bootstrap admin password 123';

describe.skipIf(!available)('routing from the JetStream KV bucket across two replicas', () => {
  let a: GatehouseProcess;
  let b: GatehouseProcess;
  let pair: RoutedReplicaPair;
  let bucket: string;
  let kv: KV;
  let first: FakeHttp;
  let second: FakeHttp;

  const signin = async (base: string) => {
    const result = await http(base, 'POST', '/v1/auth/signin', { json: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } });
    expect(result.status, result.text).toBe(200);
    return result.json.access_token as string;
  };
  const servedBy = async (base: string, token: string, tenant = 'acme') => {
    const result = await http(base, 'POST', '/v1/query/orders', { token, json: {}, headers: { 'x-tenant-id': tenant } });
    return result.status === 200 ? (result.json.served_by as string) : `status ${result.status}`;
  };

  beforeAll(async () => {
    [first, second] = await Promise.all([fakeHttp('shard-one'), fakeHttp('shard-two')]);
    pair = await spawnRoutedReplicaPair(
      'routing',
      { projection: { placement: { acme: 'one', '*': 'one' }, shards: { one: [first.endpoint] } } },
      { MASTER_KEY, BOOTSTRAP_ADMIN_EMAIL: ADMIN_EMAIL, BOOTSTRAP_ADMIN_PASSWORD: ADMIN_PASSWORD },
    );
    ({ a, b, kv, bucket } = pair);
  });
  afterAll(async () => {
    await pair?.stop();
    await Promise.all([first?.stop(), second?.stop()]);
  });

  it('seeds the empty bucket from ROUTING_FILE once and routes on both replicas', async () => {
    const entry = await kv.get('projection.placement');
    expect(entry?.json()).toEqual({ acme: 'one', '*': 'one' });
    expect(entry?.revision).toBeGreaterThan(0);
    // start-up reads both parts as one document: no false "unknown shard id" refusal, nothing counted
    for (const replica of [a, b]) {
      expect(replica.logs()).not.toContain('routing change rejected');
      expect((await http(replica.url, 'GET', '/metrics')).text).not.toMatch(/gatehouse_routing_rejected_total\{[^}]*\} [1-9]/);
    }
    const token = await signin(a.url);
    expect(await servedBy(a.url, token)).toBe('shard-one');
    expect(await servedBy(b.url, token)).toBe('shard-one');
    for (const replica of [a, b]) {
      const ready = await http(replica.url, 'GET', '/ready');
      expect(ready.json.checks.routing).toBe('ok');
      const view = await http(replica.url, 'GET', '/admin/routing', { token });
      expect(view.json).toMatchObject({ source: 'kv', bucket });
      expect(view.json.service_kinds.projection.revisions.placement).toBe(entry!.revision);
    }
  });

  it('puts a KV change in force on both replicas within 1 s', async () => {
    const token = await signin(a.url);
    await kv.put('projection.shards', JSON.stringify({ one: [first.endpoint], two: [second.endpoint] }));
    const revision = await kv.put('projection.placement', JSON.stringify({ acme: 'two', '*': 'one' }));
    const written = Date.now();
    await Promise.all([a, b].map((replica) => waitFor(async () => (await servedBy(replica.url, token)) === 'shard-two', 1000, 20)));
    expect(Date.now() - written).toBeLessThanOrEqual(1000);
    expect(await servedBy(b.url, token, 'other')).toBe('shard-one');
    const view = await http(b.url, 'GET', '/admin/routing', { token });
    expect(view.json.service_kinds.projection.revisions.placement).toBe(revision);
    const metrics = await http(b.url, 'GET', '/metrics');
    expect(metrics.text).toContain(`gatehouse_routing_revision{service_kind="projection",part="placement"} ${revision}`);
  });

  it('rejects invalid documents, logs and counts them, and keeps the last good table', async () => {
    const token = await signin(a.url);
    const before = (await http(a.url, 'GET', '/admin/routing', { token })).json.service_kinds.projection.revisions;
    const invalid: Array<[string, string]> = [
      ['projection.placement', '{not json'],
      ['projection.placement', JSON.stringify({ acme: 'missing-shard' })],
      ['projection.shards', JSON.stringify({ one: [], two: [second.endpoint] })],
      ['projection.placement', JSON.stringify({ 'Bad Tenant!': 'one' })],
      ['projection.shards', JSON.stringify({ one: ['http://not-an-endpoint/'] })],
    ];
    for (const [key, value] of invalid) {
      const revision = await kv.put(key, value);
      await waitFor(async () => {
        const view = await http(a.url, 'GET', '/admin/routing', { token });
        return view.json.service_kinds.projection.last_rejection?.revision === revision;
      }, 2000);
      for (const replica of [a, b]) expect(await servedBy(replica.url, token)).toBe('shard-two');
    }
    const view = await http(b.url, 'GET', '/admin/routing', { token });
    expect(view.json.service_kinds.projection.last_rejection.errors.length).toBeGreaterThan(0);
    const after = (await http(a.url, 'GET', '/admin/routing', { token })).json.service_kinds.projection.revisions;
    expect(after).toEqual(before);
    const metrics = await http(a.url, 'GET', '/metrics');
    expect(metrics.text).toMatch(/gatehouse_routing_rejected_total\{service_kind="projection"\} [5-9]/);
    // a valid document again goes live
    await kv.put('projection.shards', JSON.stringify({ one: [first.endpoint], two: [second.endpoint] }));
    await kv.put('projection.placement', JSON.stringify({ acme: 'one' }));
    await waitFor(async () => (await servedBy(b.url, token)) === 'shard-one', 1000, 20);
  });

  it('closes a subscription with 1008 within 1 s when its session is revoked on the other replica', async () => {
    const signinResult = await http(a.url, 'POST', '/v1/auth/signin', { json: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } });
    const token = signinResult.json.access_token as string;
    const socket = new WebSocket(`${b.url.replace('http', 'ws')}/v1/subscribe/orders`, {
      headers: { authorization: `Bearer ${token}`, 'x-tenant-id': 'acme' },
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    const reply = new Promise<string>((resolve) => socket.once('message', (data) => resolve(data.toString())));
    socket.send('ping');
    expect(await reply).toBe('shard-one:ping');
    const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
    const signout = await http(a.url, 'POST', '/v1/auth/signout', { token, json: { refresh_token: signinResult.json.refresh_token } });
    expect(signout.status).toBe(204);
    const revoked = Date.now();
    expect(await closed).toBe(1008);
    expect(Date.now() - revoked).toBeLessThanOrEqual(1000);
  });

  it('closes subscriptions with 1001 when the replica shuts down', async () => {
    const token = await signin(a.url);
    const socket = new WebSocket(`${b.url.replace('http', 'ws')}/v1/subscribe/orders`, {
      headers: { authorization: `Bearer ${token}`, 'x-tenant-id': 'acme' },
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
    const exit = b.stop('SIGTERM');
    expect(await closed).toBe(1001);
    expect(await exit).toBe(0);
  });
});
