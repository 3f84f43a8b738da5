import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import * as grpcLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMAND_LOADER_OPTIONS, COMMAND_PROTO_PATH } from '../../src/proxy/command-proto';
import { bootApp, type TestApp } from '../support/app';
import { userWithRole } from '../support/admin-fixtures';
import { signupUser } from '../support/auth-flows';
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
import { http } from '../support/http';
import { freePort, waitFor } from '../support/process';
import { servicesAvailable } from '../support/services';

const available = servicesAvailable({ postgres: true });
const MASTER_KEY = Buffer.alloc(32, 21).toString('base64');
const ADMIN_EMAIL = 'proxy-root@example.com';
const ADMIN_PASSWORD = 'bootstrap admin password 123';
const TIMEOUT_MS = 800;
const COOLDOWN_MS = 1000;
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`;
const ALLOWED_ORIGIN = 'https://app.example.com';
const WS_CAP = 3;

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  return freePort();
}

/** What came back on a raw socket: the status line's code, headers (lower-case names), body. */
interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Sends `head` as written over a plain TCP socket and reads the answer until the server closes. */
function rawExchange(base: string, head: string): Promise<RawAnswer> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname, () => socket.write(head));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      const [statusLine, ...lines] = text.slice(0, split).split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      resolve({ status: Number(statusLine!.split(' ')[1]), headers, body: text.slice(split + 4) });
    });
  });
}

describe.skipIf(!available)('proxies to aggregate, projection and runner upstreams', () => {
  let db: TestDatabase;
  let app: TestApp;
  let base: string;
  let grpcPort: number;
  let aggregate: FakeAggregate;
  let projection: FakeHttp;
  let projectionB: FakeHttp;
  let flaky: FakeHttp;
  let resetA: FakeHttp;
  let resetB: FakeHttp;
  let runner: FakeHttp;
  let adminToken: string;
  let adminId: string;
  let userToken: string;
  let jwks: ReturnType<typeof createLocalJWKSet>;

  beforeAll(async () => {
    [db, aggregate, projection, projectionB, flaky, resetA, resetB, runner] = await Promise.all([
      createTestDatabase(),
      fakeAggregate('agg-1'),
      fakeHttp('proj-1'),
      fakeHttp('proj-2'),
      fakeHttp('flaky'),
      fakeHttp('reset-a'),
      fakeHttp('reset-b'),
      fakeHttp('runner-1'),
    ]);
    resetA.state.fault = 'reset';
    resetB.state.fault = 'reset';
    const dead = `127.0.0.1:${await closedPort()}`;
    const routing = {
      aggregate: { placement: { acme: 'a1', slowco: 'a1' }, shards: { a1: [aggregate.endpoint] } },
      projection: {
        placement: { acme: 'p1', beta: 'pair', gamma: 'half-dead', down: 'dead', flaky: 'flaky', resets: 'resets', garbage: 'garbage' },
        shards: {
          p1: [projection.endpoint],
          pair: [projection.endpoint, projectionB.endpoint],
          'half-dead': [dead, projectionB.endpoint],
          dead: [dead],
          flaky: [flaky.endpoint],
          resets: [resetA.endpoint, resetB.endpoint],
          garbage: [resetA.endpoint],
        },
      },
      runner: { placement: { '*': 'r1' }, shards: { r1: [runner.endpoint] } },
    };
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gh-routing-')), 'routing.json');
    fs.writeFileSync(file, JSON.stringify(routing));
    grpcPort = await freePort();
    app = await bootApp({
      DATABASE_URL: db.url,
      MASTER_KEY,
      BOOTSTRAP_ADMIN_EMAIL: ADMIN_EMAIL,
      BOOTSTRAP_ADMIN_PASSWORD: ADMIN_PASSWORD,
      AUTH_IP_LIMIT: '100000',
      ROUTING_FILE: file,
      GRPC_PORT: String(grpcPort),
      UPSTREAM_TIMEOUT_MS: String(TIMEOUT_MS),
      UPSTREAM_BREAKER_FAILURES: '3',
      UPSTREAM_BREAKER_COOLDOWN_MS: String(COOLDOWN_MS),
      CORS_ORIGINS: ALLOWED_ORIGIN,
      WS_MAX_CONNECTIONS_PER_PRINCIPAL: String(WS_CAP),
      // the fake clients connect from loopback: trusting it makes X-Forwarded-For the client IP
      TRUST_PROXY: '127.0.0.1',
    });
    base = app.url;
    const signin = await http(base, 'POST', '/v1/auth/signin', { json: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } });
    expect(signin.status, signin.text).toBe(200);
    adminToken = signin.json.access_token;
    adminId = signin.json.user.id;
    userToken = (await signupUser(base)).accessToken;
    jwks = createLocalJWKSet((await http(base, 'GET', '/.well-known/jwks.json')).json as JSONWebKeySet);
  });
  afterAll(async () => {
    await app?.close();
    await Promise.all([aggregate, projection, projectionB, flaky, resetA, resetB, runner].map((fake) => fake?.stop()));
    await db?.drop();
  });

  const query = (
    tenant: string | undefined,
    body: unknown = { filter: 'open' },
    headers: Record<string, string> = {},
    token = adminToken,
  ) => http(base, 'POST', '/v1/query/orders', { json: body, token, headers: { ...(tenant ? { 'x-tenant-id': tenant } : {}), ...headers } });

  async function expectInternalToken(authorization: string | undefined, audience: string, tenant: string | undefined) {
    expect(authorization).toMatch(/^Bearer /);
    const token = authorization!.slice('Bearer '.length);
    expect(token).not.toBe(adminToken);
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      algorithms: ['ES256'],
      audience,
      issuer: app.gatehouse.config.PUBLIC_URL,
    });
    expect(protectedHeader.alg).toBe('ES256');
    expect(payload.sub).toBe(adminId);
    expect(payload.tenant_id).toBe(tenant);
    expect(payload.exp! - payload.iat!).toBe(60);
  }

  describe('POST /v1/query/{view_type}', () => {
    it('relays to the tenant projection shard with the internal identity and without client credentials', async () => {
      const before = projection.calls.length;
      const result = await query(
        'acme',
        { filter: 'open', n: 1 },
        {
          traceparent: TRACEPARENT,
          'x-correlation-id': 'corr-proxy-1',
          'x-auth-principal-id': 'spoofed',
          'x-auth-roles': 'platform_admin',
          cookie: 'session=secret',
          'x-custom': 'kept',
        },
      );
      expect(result.status, result.text).toBe(200);
      expect(result.json).toEqual({ served_by: 'proj-1', method: 'POST', url: '/v1/query/orders', body: { filter: 'open', n: 1 } });
      expect(result.headers.get('x-served-by')).toBe('proj-1');
      expect(result.headers.get('x-upstream-hop')).toBeNull();
      // Gatehouse's own connection has its own keep-alive; the upstream's (timeout=30) stays behind
      expect(result.headers.get('keep-alive')).not.toBe('timeout=30');
      expect(result.headers.get('x-correlation-id')).toBe('corr-proxy-1');
      expect(projection.calls.length).toBe(before + 1);
      const seen = projection.calls.at(-1)!;
      expect(seen.body).toBe(JSON.stringify({ filter: 'open', n: 1 }));
      await expectInternalToken(seen.headers.authorization, 'projection', 'acme');
      expect(seen.headers['x-auth-principal-id']).toBe(adminId);
      expect(seen.headers['x-auth-principal-type']).toBe('user');
      expect(seen.headers['x-auth-roles']).toBeUndefined();
      expect(seen.headers['x-tenant-id']).toBe('acme');
      expect(seen.headers['x-correlation-id']).toBe('corr-proxy-1');
      expect(seen.headers['x-request-id']).toBe(result.headers.get('x-request-id'));
      expect(seen.headers.traceparent).toMatch(new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-01$`));
      expect(seen.headers.traceparent).not.toBe(TRACEPARENT);
      expect(seen.headers.cookie).toBeUndefined();
      expect(seen.headers['x-custom']).toBe('kept');
      expect(JSON.stringify(seen.headers)).not.toContain(adminToken);
    });

    it('relays upstream error replies as they are', async () => {
      projection.state.status = 409;
      projection.state.body = '{"error":"stale view"}';
      try {
        const result = await query('acme');
        expect(result.status).toBe(409);
        expect(result.text).toBe('{"error":"stale view"}');
        expect(result.headers.get('content-type')).toBe('application/json');
      } finally {
        projection.state.status = 200;
        projection.state.body = null;
      }
    });

    it('streams a large upstream body through unchanged', async () => {
      const large = JSON.stringify({ items: Array.from({ length: 4000 }, (_, i) => ({ id: `o-${i}`, note: 'x'.repeat(40) })) });
      projection.state.body = large;
      try {
        const result = await query('acme');
        expect(result.status).toBe(200);
        expect(large.length).toBeGreaterThan(64 * 1024);
        expect(result.text).toBe(large);
      } finally {
        projection.state.body = null;
      }
    });

    it('applies tenant roles: a viewer may query but not command, and nothing in another tenant', async () => {
      await http(base, 'POST', '/admin/tenants', { token: adminToken, json: { id: 'beta', name: 'Beta' } });
      const viewer = await userWithRole(base, adminToken, 'beta', 'tenant_viewer', 'proxy-viewer');
      expect((await query('beta', { filter: 'x' }, {}, viewer.accessToken)).status).toBe(200);
      const before = aggregate.calls.length;
      const command = await http(base, 'POST', '/v1/commands/order/o-9', {
        token: viewer.accessToken,
        headers: { 'x-tenant-id': 'beta' },
        json: { command_id: 'c-9', command_type: 'Create', payload: {} },
      });
      expect(command.status).toBe(403);
      expect(command.json.code).toBe('forbidden');
      const elsewhere = await query('acme', { filter: 'x' }, {}, viewer.accessToken);
      expect(elsewhere.status).toBe(403);
      expect(elsewhere.json.code).toBe('tenant_forbidden');
      expect(aggregate.calls.length).toBe(before);
    });

    it('refuses 401, 403 and 400 before any upstream contact', async () => {
      const before = projection.calls.length;
      const none = await http(base, 'POST', '/v1/query/orders', { json: {}, headers: { 'x-tenant-id': 'acme' } });
      expect(none.status).toBe(401);
      expect(none.json.code).toBe('unauthenticated');
      expect(none.headers.get('www-authenticate')).toBe('Bearer');
      const bad = await query('acme', {}, {}, 'not-a-token');
      expect(bad.status).toBe(401);
      expect(bad.json.code).toBe('invalid_token');
      const forbidden = await query('acme', {}, {}, userToken);
      expect(forbidden.status).toBe(403);
      expect(['forbidden', 'tenant_forbidden']).toContain(forbidden.json.code);
      const missing = await query(undefined);
      expect(missing.status).toBe(400);
      expect(missing.json.code).toBe('tenant_required');
      const malformed = await query('Not_A_Tenant');
      expect(malformed.status).toBe(400);
      expect(malformed.json.code).toBe('invalid_tenant_id');
      expect(projection.calls.length).toBe(before);
    });

    it('answers 404 tenant_not_routed for a tenant without placement, and counts the miss', async () => {
      const result = await query('nowhere');
      expect(result.status).toBe(404);
      expect(result.json.code).toBe('tenant_not_routed');
      expect(result.headers.get('content-type')).toContain('application/problem+json');
      const metrics = await http(base, 'GET', '/metrics');
      expect(metrics.text).toMatch(/gatehouse_routing_misses_total [1-9]/);
    });

    it('answers 504 upstream_timeout within the timeout plus a small margin', async () => {
      projection.state.delayMs = TIMEOUT_MS * 3;
      try {
        const started = Date.now();
        const result = await query('acme');
        const elapsed = Date.now() - started;
        expect(result.status).toBe(504);
        expect(result.json.code).toBe('upstream_timeout');
        expect(elapsed).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
        expect(elapsed).toBeLessThan(TIMEOUT_MS + 400);
        expect(result.text).not.toContain('127.0.0.1');
      } finally {
        projection.state.delayMs = 0;
      }
    });

    it('answers 502 upstream_unavailable when the upstream is down, resets or answers garbage', async () => {
      const down = await query('down');
      expect(down.status).toBe(502);
      expect(down.json.code).toBe('upstream_unavailable');
      expect(down.text).not.toContain('127.0.0.1');
      resetA.state.fault = 'garbage';
      try {
        const garbage = await query('garbage');
        expect(garbage.status).toBe(502);
        expect(garbage.json.code).toBe('upstream_unavailable');
      } finally {
        resetA.state.fault = 'reset';
      }
    });

    it('never retries a non-idempotent call that may have reached an upstream', async () => {
      const before = resetA.calls.length + resetB.calls.length;
      const result = await query('resets');
      expect(result.status).toBe(502);
      expect(resetA.calls.length + resetB.calls.length).toBe(before + 1);
    });

    it('balances a shard over its endpoints and skips one that refuses connections', async () => {
      const [a, b] = [projection.calls.length, projectionB.calls.length];
      for (let i = 0; i < 4; i += 1) expect((await query('beta')).status).toBe(200);
      expect(projection.calls.length - a).toBe(2);
      expect(projectionB.calls.length - b).toBe(2);
      const beforeB = projectionB.calls.length;
      for (let i = 0; i < 4; i += 1) expect((await query('gamma')).status).toBe(200);
      expect(projectionB.calls.length - beforeB).toBe(4);
    });

    it('opens the breaker after repeated failures (503 circuit_open + Retry-After) and recovers through a probe', async () => {
      await flaky.stop();
      for (let i = 0; i < 3; i += 1) expect((await query('flaky')).status).toBe(502);
      const open = await query('flaky');
      expect(open.status).toBe(503);
      expect(open.json.code).toBe('circuit_open');
      expect(Number(open.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      await flaky.start();
      const before = flaky.calls.length;
      const elapsed = await waitFor(async () => (await query('flaky')).status === 200, COOLDOWN_MS * 4, 100);
      expect(elapsed).toBeGreaterThan(0);
      expect(flaky.calls.length).toBe(before + 1);
      expect((await query('flaky')).status).toBe(200);
    });
  });

  describe('commands', () => {
    it('wraps SubmitCommand over HTTP with the same response shape', async () => {
      const before = aggregate.calls.length;
      const result = await http(base, 'POST', '/v1/commands/order/o-1', {
        token: adminToken,
        headers: { 'x-tenant-id': 'acme', traceparent: TRACEPARENT, 'x-auth-principal-id': 'spoofed' },
        json: { command_id: 'c-http-1', command_type: 'order.place', payload: { sku: 'x', qty: 2 }, expected_version: 3 },
      });
      expect(result.status, result.text).toBe(200);
      expect(result.json).toEqual({
        aggregate_id: 'o-1',
        version: 7,
        events: [
          {
            event_id: 'agg-1-c-http-1',
            event_type: 'order.place.done',
            version: 7,
            payload: { served_by: 'agg-1', echo: { sku: 'x', qty: 2 } },
          },
        ],
      });
      expect(aggregate.calls.length).toBe(before + 1);
      const seen = aggregate.calls.at(-1)!;
      expect(seen.request).toMatchObject({
        aggregate_type: 'order',
        aggregate_id: 'o-1',
        command_id: 'c-http-1',
        command_type: 'order.place',
        expected_version: '3',
      });
      await expectInternalToken(seen.metadata.authorization, 'aggregate', 'acme');
      expect(seen.metadata['x-auth-principal-id']).toBe(adminId);
      expect(seen.metadata['x-tenant-id']).toBe('acme');
      expect(seen.metadata.traceparent).toMatch(new RegExp(`^00-${TRACE_ID}-`));
      expect(seen.metadata['x-request-id']).toBe(result.headers.get('x-request-id'));
    });

    it('validates the body and refuses callers before any upstream contact', async () => {
      const before = aggregate.calls.length;
      const invalid = await http(base, 'POST', '/v1/commands/order/o-1', {
        token: adminToken,
        headers: { 'x-tenant-id': 'acme' },
        json: { command_type: 'x' },
      });
      expect(invalid.status).toBe(400);
      expect(invalid.json.code).toBe('validation_failed');
      const forbidden = await http(base, 'POST', '/v1/commands/order/o-1', {
        token: userToken,
        headers: { 'x-tenant-id': 'acme' },
        json: { command_id: 'c', command_type: 'x' },
      });
      expect(forbidden.status).toBe(403);
      const missing = await http(base, 'POST', '/v1/commands/order/o-1', {
        token: adminToken,
        json: { command_id: 'c', command_type: 'x' },
      });
      expect(missing.json.code).toBe('tenant_required');
      expect(aggregate.calls.length).toBe(before);
    });

    it('maps upstream error replies: FAILED_PRECONDITION → 409 conflict with the upstream message', async () => {
      aggregate.state.errorCode = grpc.status.FAILED_PRECONDITION;
      aggregate.state.errorDetails = 'expected version 3, found 5';
      try {
        const result = await http(base, 'POST', '/v1/commands/order/o-1', {
          token: adminToken,
          headers: { 'x-tenant-id': 'acme' },
          json: { command_id: 'c-conflict', command_type: 'x' },
        });
        expect(result.status).toBe(409);
        expect(result.json).toMatchObject({ code: 'conflict', detail: 'expected version 3, found 5' });
      } finally {
        aggregate.state.errorCode = undefined;
      }
    });
  });

  describe('gRPC CommandService on GRPC_PORT', () => {
    const request = (commandId: string, aggregateType = 'order') => ({
      aggregate_type: aggregateType,
      aggregate_id: 'o-9',
      command_id: commandId,
      command_type: 'order.ship',
      payload: Buffer.from(JSON.stringify({ by: 'boat' })),
    });

    it('forwards SubmitCommand with the internal identity and the client deadline', async () => {
      const client = commandClient(grpcPort);
      try {
        const before = aggregate.calls.length;
        const { error, response } = await submitCommand(
          client,
          request('c-grpc-1'),
          { authorization: `Bearer ${adminToken}`, 'x-tenant-id': 'acme', traceparent: TRACEPARENT },
          3000,
        );
        expect(error).toBeNull();
        expect(response.aggregate_id).toBe('o-9');
        expect(response.version).toBe('7');
        expect(JSON.parse(response.events[0].payload.toString())).toEqual({ served_by: 'agg-1', echo: { by: 'boat' } });
        expect(aggregate.calls.length).toBe(before + 1);
        const seen = aggregate.calls.at(-1)!;
        await expectInternalToken(seen.metadata.authorization, 'aggregate', 'acme');
        expect(seen.metadata.traceparent).toMatch(new RegExp(`^00-${TRACE_ID}-`));
        expect(seen.deadlineInMs).toBeDefined();
        expect(seen.deadlineInMs!).toBeLessThanOrEqual(3000);
      } finally {
        client.close();
      }
    });

    it('retries UNAVAILABLE with the same command_id within the deadline', async () => {
      const client = commandClient(grpcPort);
      try {
        const before = aggregate.calls.length;
        aggregate.state.failNext = 2;
        const { error, response } = await submitCommand(client, request('c-retry-1'), {
          authorization: `Bearer ${adminToken}`,
          'x-tenant-id': 'acme',
        });
        expect(error).toBeNull();
        expect(response.events[0].event_id).toBe('agg-1-c-retry-1');
        const calls = aggregate.calls.slice(before);
        expect(calls).toHaveLength(3);
        expect(new Set(calls.map((call) => call.request.command_id))).toEqual(new Set(['c-retry-1']));
      } finally {
        aggregate.state.failNext = 0;
        client.close();
      }
    });

    it('maps refusals to gRPC status codes before any upstream contact', async () => {
      const client = commandClient(grpcPort);
      try {
        const before = aggregate.calls.length;
        const cases: Array<[Record<string, string>, number]> = [
          [{ 'x-tenant-id': 'acme' }, grpc.status.UNAUTHENTICATED],
          [{ authorization: 'Bearer nope', 'x-tenant-id': 'acme' }, grpc.status.UNAUTHENTICATED],
          [{ authorization: `Bearer ${userToken}`, 'x-tenant-id': 'acme' }, grpc.status.PERMISSION_DENIED],
          [{ authorization: `Bearer ${adminToken}` }, grpc.status.INVALID_ARGUMENT],
          [{ authorization: `Bearer ${adminToken}`, 'x-tenant-id': 'BAD!' }, grpc.status.INVALID_ARGUMENT],
        ];
        for (const [metadata, code] of cases) {
          const { error } = await submitCommand(client, request('c-refused'), metadata);
          expect(error?.code, JSON.stringify(metadata)).toBe(code);
        }
        expect(aggregate.calls.length).toBe(before);
        const unrouted = await submitCommand(client, request('c-unrouted'), {
          authorization: `Bearer ${adminToken}`,
          'x-tenant-id': 'nowhere',
        });
        expect(unrouted.error?.code).toBe(grpc.status.NOT_FOUND);
        expect(unrouted.error?.metadata.get('gatehouse-error-code')[0]).toBe('tenant_not_routed');
      } finally {
        client.close();
      }
    });

    it('decides on the aggregate_type the aggregate will read (the last one) and refuses a malformed message before any upstream contact', async () => {
      // the handler forwards the request bytes unchanged: what it authorizes must be what the aggregate decodes
      await http(base, 'POST', '/admin/tenants', { token: adminToken, json: { id: 'acme', name: 'Acme' } });
      const role = await http(base, 'POST', '/admin/roles', {
        token: adminToken,
        json: { name: `orders-only-${Date.now()}`, tenant_id: 'acme', grants: ['commands.submit:order'] },
      });
      expect(role.status, role.text).toBe(201);
      const user = await signupUser(base);
      const assigned = await http(base, 'POST', '/admin/assignments', {
        token: adminToken,
        json: { principal_id: user.userId, tenant_id: 'acme', role_id: role.json.id },
      });
      expect(assigned.status, assigned.text).toBe(201);
      const definition = grpcLoader.loadSync(COMMAND_PROTO_PATH, COMMAND_LOADER_OPTIONS);
      const encode = (definition['aggregate.gateway.v1.CommandService'] as grpcLoader.ServiceDefinition).SubmitCommand!.requestSerialize;
      const aggregateType = (value: string) => Buffer.concat([Buffer.from([0x0a, value.length]), Buffer.from(value)]);
      const command = encode({ aggregate_type: 'order', aggregate_id: 'o-9', command_id: 'c-wire-1', command_type: 'order.ship' });
      const pass = (bytes: Buffer) => bytes;
      const raw = new grpc.Client(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
      const send = (bytes: Buffer) =>
        new Promise<grpc.ServiceError | null>((resolve) => {
          const metadata = new grpc.Metadata();
          metadata.set('authorization', `Bearer ${user.accessToken}`);
          metadata.set('x-tenant-id', 'acme');
          raw.makeUnaryRequest(
            '/aggregate.gateway.v1.CommandService/SubmitCommand',
            pass,
            pass,
            bytes,
            metadata,
            { deadline: Date.now() + 5000 },
            (error: grpc.ServiceError | null) => resolve(error),
          );
        });
      try {
        const before = aggregate.calls.length;
        expect((await send(Buffer.concat([command, aggregateType('payroll')])))?.code).toBe(grpc.status.PERMISSION_DENIED);
        const malformed = await send(Buffer.from([0x0a, 0x05, 0x6f]));
        expect(malformed?.code).toBe(grpc.status.INVALID_ARGUMENT);
        expect(malformed?.metadata.get('gatehouse-error-code')[0]).toBe('validation_failed');
        expect(aggregate.calls.length).toBe(before);
        expect(await send(Buffer.concat([aggregateType('payroll'), command]))).toBeNull();
        expect(aggregate.calls.length).toBe(before + 1);
        expect(aggregate.calls.at(-1)!.request.aggregate_type).toBe('order');
      } finally {
        raw.close();
      }
    });

    it('answers DEADLINE_EXCEEDED when the upstream is slower than the client deadline', async () => {
      const client = commandClient(grpcPort);
      aggregate.state.delayMs = 2000;
      try {
        const started = Date.now();
        const { error } = await submitCommand(
          client,
          request('c-slow'),
          { authorization: `Bearer ${adminToken}`, 'x-tenant-id': 'acme' },
          500,
        );
        expect(error?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
        expect(Date.now() - started).toBeLessThan(1500);
      } finally {
        aggregate.state.delayMs = 0;
        client.close();
      }
    });

    it('speaks gRPC as grpc-js did: gzip requests, UNIMPLEMENTED for other methods, RESOURCE_EXHAUSTED above 4 MiB', async () => {
      const metadata = { authorization: `Bearer ${adminToken}`, 'x-tenant-id': 'acme' };
      const Service = commandClient(grpcPort).constructor as new (
        address: string,
        credentials: grpc.ChannelCredentials,
        options: grpc.ChannelOptions,
      ) => ReturnType<typeof commandClient>;
      const gzip = new Service(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure(), { 'grpc.default_compression_algorithm': 2 });
      const client = commandClient(grpcPort);
      try {
        const before = aggregate.calls.length;
        const compressed = await submitCommand(gzip, request('c-gzip'), metadata);
        expect(compressed.error).toBeNull();
        expect(aggregate.calls.at(-1)!.request).toMatchObject({ command_id: 'c-gzip', aggregate_type: 'order' });

        const other = await new Promise<grpc.ServiceError | null>((resolve) =>
          client.makeUnaryRequest(
            '/aggregate.gateway.v1.CommandService/Other',
            (bytes: Buffer) => bytes,
            (bytes: Buffer) => bytes,
            Buffer.alloc(0),
            new grpc.Metadata(),
            (error: grpc.ServiceError | null) => resolve(error),
          ),
        );
        expect(other?.code).toBe(grpc.status.UNIMPLEMENTED);

        const large = { ...request('c-large'), payload: Buffer.alloc(4 * 1024 * 1024 + 1) };
        const refused = await submitCommand(client, large, metadata);
        expect(refused.error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
        expect(aggregate.calls.length).toBe(before + 1);
      } finally {
        gzip.close();
        client.close();
      }
    });
  });

  describe('runner passthrough', () => {
    it('passes method, path rest, query and body to the runner shard', async () => {
      const before = runner.calls.length;
      const get = await http(base, 'GET', '/admin/runner/jobs/42?verbose=1&x=%20y', { token: adminToken });
      expect(get.status, get.text).toBe(200);
      expect(get.json).toMatchObject({ served_by: 'runner-1', method: 'GET', url: '/jobs/42?verbose=1&x=%20y' });
      const put = await http(base, 'PUT', '/admin/runner/jobs/42', { token: adminToken, json: { paused: true } });
      expect(put.json).toMatchObject({ method: 'PUT', url: '/jobs/42', body: { paused: true } });
      expect(runner.calls.length).toBe(before + 2);
      const seen = runner.calls.at(-1)!;
      await expectInternalToken(seen.headers.authorization, 'runner', undefined);
      expect(seen.headers['x-tenant-id']).toBeUndefined();
      const forbidden = await http(base, 'GET', '/admin/runner/jobs', { token: userToken });
      expect(forbidden.status).toBe(403);
      expect(runner.calls.length).toBe(before + 2);
    });
  });

  describe('WebSocket /v1/subscribe/{view_type}', () => {
    const wsUrl = (view = 'orders') => `${base.replace('http', 'ws')}/v1/subscribe/${view}`;

    function open(
      headers: Record<string, string>,
      protocols?: string[],
      view = 'orders',
    ): Promise<{ socket?: WebSocket; status?: number; body?: string; headers?: Record<string, string | string[] | undefined> }> {
      return new Promise((resolve) => {
        const socket = new WebSocket(wsUrl(view), protocols, { headers });
        let upgraded: Record<string, string | string[] | undefined> | undefined;
        socket.once('upgrade', (response) => (upgraded = response.headers));
        socket.once('open', () => resolve({ socket, headers: upgraded }));
        socket.once('unexpected-response', (_request, response) => {
          let body = '';
          response.on('data', (chunk: Buffer) => (body += chunk.toString()));
          response.on('end', () => resolve({ status: response.statusCode, body, headers: response.headers }));
        });
        socket.once('error', () => resolve({}));
      });
    }

    const nextMessage = (socket: WebSocket) => new Promise<string>((resolve) => socket.once('message', (data) => resolve(data.toString())));
    const closed = (socket: WebSocket) => new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));

    it('relays frames both ways with the internal identity upstream', async () => {
      const before = projection.calls.length;
      const { socket } = await open({ authorization: `Bearer ${adminToken}`, 'x-tenant-id': 'acme', traceparent: TRACEPARENT });
      expect(socket).toBeDefined();
      const reply = nextMessage(socket!);
      socket!.send('hello');
      expect(await reply).toBe('proj-1:hello');
      const seen = projection.calls.slice(before).find((call) => call.method === 'WS')!;
      expect(seen.url).toBe('/v1/subscribe/orders');
      await expectInternalToken(seen.headers.authorization, 'projection', 'acme');
      expect(seen.headers['x-tenant-id']).toBe('acme');
      expect(seen.headers.traceparent).toMatch(new RegExp(`^00-${TRACE_ID}-`));
      // upstream → client without a client message first
      const pushed = nextMessage(socket!);
      for (const upstream of projection.sockets) upstream.send('tick');
      expect(await pushed).toBe('tick');
      const code = closed(socket!);
      socket!.close(1000);
      expect(await code).toBe(1000);
    });

    it('accepts the token as the `bearer` subprotocol without echoing it', async () => {
      const { socket } = await open({ 'x-tenant-id': 'acme' }, ['bearer', adminToken]);
      expect(socket).toBeDefined();
      expect(socket!.protocol).toBe('bearer');
      socket!.close();
    });

    it('refuses 401, 403 and 400 before any 101 and before any upstream contact', async () => {
      const before = projection.calls.length;
      expect((await open({ 'x-tenant-id': 'acme' })).status).toBe(401);
      expect((await open({ authorization: 'Bearer junk', 'x-tenant-id': 'acme' })).status).toBe(401);
      const forbidden = await open({ authorization: `Bearer ${userToken}`, 'x-tenant-id': 'acme' });
      expect(forbidden.status).toBe(403);
      expect(['forbidden', 'tenant_forbidden']).toContain(JSON.parse(forbidden.body!).code);
      expect((await open({ authorization: `Bearer ${adminToken}` })).status).toBe(400);
      expect((await open({ authorization: `Bearer ${adminToken}`, 'x-tenant-id': 'nowhere' })).status).toBe(404);
      expect(projection.calls.length).toBe(before);
    });

    it('closes the client with 1011 when the upstream closes', async () => {
      const { socket } = await open({ authorization: `Bearer ${adminToken}`, 'x-tenant-id': 'acme' });
      const code = closed(socket!);
      await waitFor(() => projection.sockets.size > 0);
      for (const upstream of projection.sockets) upstream.terminate();
      expect(await code).toBe(1011);
    });

    it('closes with 1008 within 1 s when the principal loses the right', async () => {
      await http(base, 'POST', '/admin/tenants', { token: adminToken, json: { id: 'acme', name: 'Acme' } });
      const viewer = await userWithRole(base, adminToken, 'acme', 'tenant_viewer', 'ws-viewer');
      const { socket } = await open({ authorization: `Bearer ${viewer.accessToken}`, 'x-tenant-id': 'acme' });
      expect(socket).toBeDefined();
      const code = closed(socket!);
      const started = Date.now();
      expect((await http(base, 'DELETE', `/admin/assignments/${viewer.assignmentId}`, { token: adminToken })).status).toBe(204);
      expect(await code).toBe(1008);
      expect(Date.now() - started).toBeLessThan(1000);
    });

    it('closes with 1009 a message over the size limit', async () => {
      const { socket } = await open({ authorization: `Bearer ${adminToken}`, 'x-tenant-id': 'acme' });
      const code = closed(socket!);
      socket!.send(Buffer.alloc(1024 * 1024 + 1));
      expect(await code).toBe(1009);
    });

    it('closes the client with 1009 when the upstream sends a message over the size limit', async () => {
      const before = new Set(projection.sockets);
      const { socket } = await open({ authorization: `Bearer ${adminToken}`, 'x-tenant-id': 'acme' });
      expect(socket).toBeDefined();
      const code = closed(socket!);
      await waitFor(() => [...projection.sockets].some((upstream) => !before.has(upstream)));
      const upstream = [...projection.sockets].find((candidate) => !before.has(candidate))!;
      upstream.send(Buffer.alloc(1024 * 1024 + 1));
      expect(await code).toBe(1009);
    });

    /** A new subscription and the projection's side of it. */
    async function openRelayed(): Promise<{ socket: WebSocket; upstream: WebSocket }> {
      const before = new Set(projection.sockets);
      const { socket } = await open({ authorization: `Bearer ${adminToken}`, 'x-tenant-id': 'acme' });
      expect(socket).toBeDefined();
      await waitFor(() => [...projection.sockets].some((upstream) => !before.has(upstream)));
      return { socket: socket!, upstream: [...projection.sockets].find((candidate) => !before.has(candidate))! };
    }

    it('closes with 1009 a message whose fragments together exceed the size limit (each fragment under it)', async () => {
      const { socket, upstream } = await openRelayed();
      const upstreamClosed = new Promise<number>((resolve) => upstream.once('close', (code) => resolve(code)));
      const received: Buffer[] = [];
      upstream.on('message', (data) => received.push(data as Buffer));
      const code = closed(socket);
      socket.send(Buffer.alloc(600 * 1024), { fin: false });
      socket.send(Buffer.alloc(600 * 1024), { fin: true });
      expect(await code).toBe(1009);
      // the upstream got the first fragment, then a close at the frame boundary: never a message
      expect(await upstreamClosed).toBe(1000);
      expect(received).toEqual([]);
    });

    it('relays pings and pongs end to end, both ways', async () => {
      const { socket, upstream } = await openRelayed();
      const upstreamPinged = new Promise<string>((resolve) => upstream.once('ping', (data) => resolve(data.toString())));
      const ponged = new Promise<string>((resolve) => socket.once('pong', (data) => resolve(data.toString())));
      socket.ping('from-client');
      expect(await upstreamPinged).toBe('from-client');
      expect(await ponged).toBe('from-client');
      const clientPinged = new Promise<string>((resolve) => socket.once('ping', (data) => resolve(data.toString())));
      const upstreamPonged = new Promise<string>((resolve) => upstream.once('pong', (data) => resolve(data.toString())));
      upstream.ping('from-upstream');
      expect(await clientPinged).toBe('from-upstream');
      expect(await upstreamPonged).toBe('from-upstream');
      socket.close();
    });

    it("relays the client's close (code and reason) to the upstream and the upstream's answer back", async () => {
      const { socket, upstream } = await openRelayed();
      const upstreamClosed = new Promise<[number, string]>((resolve) =>
        upstream.once('close', (code, reason) => resolve([code, reason.toString()])),
      );
      const clientClosed = new Promise<[number, string]>((resolve) =>
        socket.once('close', (code, reason) => resolve([code, reason.toString()])),
      );
      socket.close(4001, 'done here');
      expect(await upstreamClosed).toEqual([4001, 'done here']);
      // ws answers a close with the same code
      expect((await clientClosed)[0]).toBe(4001);
    });

    it('closes the client with 1011 when the upstream sends a close first', async () => {
      const { socket, upstream } = await openRelayed();
      const code = closed(socket);
      upstream.close(1001, 'restarting');
      expect(await code).toBe(1011);
    });

    it('refuses a handshake from an Origin outside CORS_ORIGINS and PUBLIC_URL with 403, before any upstream contact', async () => {
      const before = projection.calls.length;
      const auth = { authorization: `Bearer ${adminToken}`, 'x-tenant-id': 'acme' };
      const foreign = await open({ ...auth, origin: 'https://evil.example.net' });
      expect(foreign.status).toBe(403);
      expect(foreign.headers!['content-type']).toMatch(/^application\/problem\+json/);
      expect(JSON.parse(foreign.body!)).toMatchObject({ code: 'forbidden', status: 403 });
      expect((await open({ ...auth, origin: 'null' })).status).toBe(403);
      // the origin check comes before authorization: no token still gets 403, not 401
      expect((await open({ 'x-tenant-id': 'acme', origin: 'https://evil.example.net' })).status).toBe(403);
      expect(projection.calls.length).toBe(before);
      for (const origin of [ALLOWED_ORIGIN, new URL(app.gatehouse.config.PUBLIC_URL).origin]) {
        const allowed = await open({ ...auth, origin });
        expect(allowed.socket, origin).toBeDefined();
        allowed.socket!.close();
      }
    });

    it(`allows ${WS_CAP} open subscriptions per principal; the next handshake is 429 rate_limited with Retry-After`, async () => {
      await http(base, 'POST', '/admin/tenants', { token: adminToken, json: { id: 'acme', name: 'Acme' } });
      const member = await userWithRole(base, adminToken, 'acme', 'tenant_member', 'ws-cap');
      const auth = { authorization: `Bearer ${member.accessToken}`, 'x-tenant-id': 'acme' };
      const sockets: WebSocket[] = [];
      for (let i = 0; i < WS_CAP; i += 1) {
        const { socket, status } = await open(auth);
        expect(socket, `subscription ${i + 1}: ${status}`).toBeDefined();
        sockets.push(socket!);
      }
      const before = projection.calls.length;
      const refused = await open(auth);
      expect(refused.status).toBe(429);
      expect(refused.headers!['retry-after']).toMatch(/^\d+$/);
      expect(JSON.parse(refused.body!)).toMatchObject({ code: 'rate_limited', status: 429 });
      expect(projection.calls.length).toBe(before);
      // another principal is not affected
      const other = await open({ authorization: `Bearer ${adminToken}`, 'x-tenant-id': 'acme' });
      expect(other.socket).toBeDefined();
      other.socket!.close();
      // closing one frees its slot
      const gone = closed(sockets[0]!);
      sockets[0]!.close();
      await gone;
      let again: Awaited<ReturnType<typeof open>> = {};
      await waitFor(async () => {
        again = await open(auth);
        return again.socket !== undefined;
      });
      for (const socket of [...sockets.slice(1), again.socket!]) socket.close();
    });

    it('refuses a malformed handshake in the problem envelope before authorization, limits and any upstream contact', async () => {
      // a principal at its connection cap: a malformed handshake of theirs is refused for what it is, not 429
      await http(base, 'POST', '/admin/tenants', { token: adminToken, json: { id: 'acme', name: 'Acme' } });
      const member = await userWithRole(base, adminToken, 'acme', 'tenant_member', 'ws-shape');
      const held: WebSocket[] = [];
      for (let i = 0; i < WS_CAP; i += 1) {
        const { socket, status } = await open({ authorization: `Bearer ${member.accessToken}`, 'x-tenant-id': 'acme' });
        expect(socket, `subscription ${i + 1}: ${status}`).toBeDefined();
        held.push(socket!);
      }
      const key = Buffer.alloc(16, 9).toString('base64');
      const handshake = (method: string, target: string, headers: Record<string, string>) =>
        rawExchange(
          base,
          `${method} ${target} HTTP/1.1\r\nHost: gatehouse.test\r\nConnection: Upgrade\r\n` +
            Object.entries({ authorization: `Bearer ${member.accessToken}`, 'x-tenant-id': 'acme', ...headers })
              .map(([name, value]) => `${name}: ${value}\r\n`)
              .join('') +
            '\r\n',
        );
      const valid = { upgrade: 'websocket', 'sec-websocket-key': key, 'sec-websocket-version': '13' };
      const before = projection.calls.length;
      const cases: { name: string; answer: Promise<RawAnswer>; status: number; code: string; path?: string }[] = [
        { name: 'POST', answer: handshake('POST', '/v1/subscribe/orders', valid), status: 405, code: 'method_not_allowed' },
        {
          name: 'Upgrade: h2c',
          answer: handshake('GET', '/v1/subscribe/orders', { ...valid, upgrade: 'h2c' }),
          status: 400,
          code: 'validation_failed',
          path: 'upgrade',
        },
        {
          name: 'no Sec-WebSocket-Key',
          answer: handshake('GET', '/v1/subscribe/orders', { upgrade: 'websocket', 'sec-websocket-version': '13' }),
          status: 400,
          code: 'validation_failed',
          path: 'sec-websocket-key',
        },
        {
          name: 'Sec-WebSocket-Version 12',
          answer: handshake('GET', '/v1/subscribe/orders', { ...valid, 'sec-websocket-version': '12' }),
          status: 400,
          code: 'validation_failed',
          path: 'sec-websocket-version',
        },
        { name: 'a path no gateway serves', answer: handshake('GET', '/v1/elsewhere', valid), status: 404, code: 'not_found' },
      ];
      for (const { name, answer, status, code, path: field } of cases) {
        const refused = await answer;
        expect(refused.status, name).toBe(status);
        expect(refused.headers['content-type'], name).toMatch(/^application\/problem\+json/);
        expect(refused.headers['x-request-id'], name).toMatch(/.+/);
        expect(refused.headers['x-correlation-id'], name).toMatch(/.+/);
        const body = JSON.parse(refused.body) as Record<string, unknown>;
        expect(body, name).toMatchObject({
          type: `urn:gatehouse:error:${code}`,
          status,
          code,
          request_id: refused.headers['x-request-id'],
        });
        if (field !== undefined) expect(body.errors, name).toEqual([{ path: field, message: expect.any(String) }]);
        if (status === 405) expect(refused.headers.allow, name).toBe('GET');
        if (field === 'sec-websocket-version') {
          expect(refused.headers['sec-websocket-version'], name).toBe('13, 8');
          // the message names both versions the gateway accepts, as the header does
          expect(body.errors, name).toEqual([{ path: field, message: 'must be 13 or 8' }]);
        }
        const lines = app
          .logs()
          .split('\n')
          .filter((text) => text.includes('"msg":"request"') && text.includes(refused.headers['x-request-id']!));
        expect(
          lines.map((text) => (JSON.parse(text) as { status: number }).status),
          name,
        ).toEqual([status]);
      }
      expect(projection.calls.length).toBe(before);
      for (const socket of held) socket.close();
    });

    it('serves every path under /v1/subscribe/ through the gateway: an unknown shape is a 404 problem', async () => {
      const nested = await open({ authorization: `Bearer ${adminToken}`, 'x-tenant-id': 'acme' }, undefined, 'orders/extra');
      expect(nested.status).toBe(404);
      expect(JSON.parse(nested.body!).code).toBe('not_found');
    });

    it('logs one request line per handshake with the client IP from X-Forwarded-For (TRUST_PROXY)', async () => {
      const correlation = `ws-log-${Date.now()}`;
      const { socket, headers } = await open({
        authorization: `Bearer ${adminToken}`,
        'x-tenant-id': 'acme',
        'x-correlation-id': correlation,
        'x-forwarded-for': '203.0.113.7',
      });
      expect(socket).toBeDefined();
      // the 101 carries the ids every response carries (CONTRACT §1)
      expect(headers!['x-correlation-id']).toBe(correlation);
      expect(headers!['x-request-id']).toMatch(/.+/);
      socket!.close();
      const refused = await open({ 'x-tenant-id': 'acme', 'x-forwarded-for': '198.51.100.9' });
      expect(refused.status).toBe(401);
      const requestLines = () =>
        app
          .logs()
          .split('\n')
          .filter((text) => text.includes('"msg":"request"'))
          .map((text) => JSON.parse(text) as Record<string, unknown>);
      const opened = requestLines().filter((entry) => entry.correlation_id === correlation);
      expect(opened).toHaveLength(1);
      expect(opened[0]).toMatchObject({
        route: '/v1/subscribe/:view_type',
        method: 'GET',
        status: 101,
        ip: '203.0.113.7',
        tenant_id: 'acme',
      });
      expect(opened[0]!.request_id).toBe(headers!['x-request-id']);
      expect(opened[0]!.authz).toMatchObject({ decision: 'allow' });
      expect(opened[0]!.upstream).toMatch(/^projection p1 /);
      const refusedLine = requestLines().filter((entry) => entry.request_id === refused.headers!['x-request-id']);
      expect(refusedLine).toHaveLength(1);
      expect(refusedLine[0]).toMatchObject({ status: 401, ip: '198.51.100.9' });
    });
  });

  describe('routing admin', () => {
    it('shows revisions and tables, resolves a tenant, and reloads, for platform admins only', async () => {
      const view = await http(base, 'GET', '/admin/routing', { token: adminToken });
      expect(view.status).toBe(200);
      expect(view.json.source).toBe('file');
      expect(view.json.service_kinds.projection.revisions).toEqual({ placement: 1, shards: 1 });
      expect(view.json.service_kinds.aggregate.placement).toEqual({ acme: 'a1', slowco: 'a1' });
      const resolved = await http(base, 'GET', '/admin/routing/resolve?tenant_id=acme&service_kind=projection', { token: adminToken });
      expect(resolved.json).toMatchObject({ shard_id: 'p1', endpoints: [projection.endpoint], matched: 'tenant' });
      const runnerDefault = await http(base, 'GET', '/admin/routing/resolve?service_kind=runner', { token: adminToken });
      expect(runnerDefault.json).toMatchObject({ shard_id: 'r1', matched: 'default' });
      const unrouted = await http(base, 'GET', '/admin/routing/resolve?tenant_id=nowhere&service_kind=projection', { token: adminToken });
      expect(unrouted.json.code).toBe('tenant_not_routed');
      const reload = await http(base, 'POST', '/admin/routing/reload', { token: adminToken });
      expect(reload.status).toBe(200);
      expect(reload.json.service_kinds.projection.revisions).toEqual({ placement: 2, shards: 2 });
      expect((await http(base, 'GET', '/admin/routing', { token: userToken })).status).toBe(403);
      expect((await http(base, 'POST', '/admin/routing/reload', { token: userToken })).status).toBe(403);
      const audited = await db.query<{ actor_id: string }>(
        `SELECT actor_id FROM audit_records WHERE action = 'platform.routing.reload' AND request_id = $1`,
        [reload.headers.get('x-request-id')],
      );
      expect(audited.rows).toEqual([{ actor_id: adminId }]);
      const ready = await http(base, 'GET', '/ready');
      expect(ready.json.checks.routing).toBe('ok');
      const metrics = await http(base, 'GET', '/metrics');
      expect(metrics.text).toContain('gatehouse_routing_revision{service_kind="projection",part="placement"} 2');
      expect(metrics.text).toMatch(/gatehouse_upstream_requests_total\{service_kind="projection",outcome="ok"\} \d+/);
    });

    it('writes one log line per proxied request with the upstream and the decision', async () => {
      const result = await query('acme');
      const requestId = result.headers.get('x-request-id')!;
      const line = app
        .logs()
        .split('\n')
        .filter((text) => text.includes(requestId) && text.includes('"msg":"request"'));
      expect(line).toHaveLength(1);
      const entry = JSON.parse(line[0]!);
      expect(entry.upstream).toMatch(/^projection p1 127\.0\.0\.1:\d+ 200 in [\d.]+ ms$/);
      expect(entry.authz.decision).toBe('allow');
      expect(entry.tenant_id).toBe('acme');
    });
  });
});
