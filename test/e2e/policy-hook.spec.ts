import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ADMIN_EMAIL, ADMIN_PASSWORD, createTenant, inTenant, signinAdmin, userWithRole } from '../support/admin-fixtures';
import { bootApp, type TestApp } from '../support/app';
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
import { http as call } from '../support/http';
import { freePort } from '../support/process';
import { servicesAvailable } from '../support/services';

const available = servicesAvailable({ postgres: true });
const MASTER_KEY = Buffer.alloc(32, 33).toString('base64');
// generous: a loaded CI machine must not turn a healthy PDP into a timeout
const POLICY_TIMEOUT_MS = 1000;

interface PolicyAsk {
  input: {
    method: string;
    path: string[];
    tenant: string | null;
    right: string;
    resource: string | null;
    claims: { sub: string; principal_type: string; amr: string[] };
    client_ip: string;
    client_cert_subject: string | null;
  };
}

type Behaviour = 'allow' | 'deny' | 'slow' | 'late' | 'error' | 'malformed' | 'country';

/** A fake PDP implementing OPA's data API: POST {input} → {result: {allow, reason?}}. */
async function fakePdp(): Promise<{ url: string; asked: PolicyAsk[]; behaviour: { mode: Behaviour }; stop(): Promise<void> }> {
  const asked: PolicyAsk[] = [];
  const behaviour = { mode: 'allow' as Behaviour };
  const sockets = new Set<net.Socket>();
  const server = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    request.on('end', () => {
      const ask = JSON.parse(body) as PolicyAsk;
      asked.push(ask);
      const answer = (status: number, payload: string) => {
        response.writeHead(status, { 'content-type': 'application/json' });
        response.end(payload);
      };
      switch (behaviour.mode) {
        case 'allow':
          return answer(200, JSON.stringify({ result: { allow: true } }));
        case 'deny':
          return answer(200, JSON.stringify({ result: { allow: false, reason: 'method not allowed for this right on weekends' } }));
        case 'slow':
          setTimeout(() => answer(200, JSON.stringify({ result: { allow: true } })), POLICY_TIMEOUT_MS * 5).unref();
          return;
        case 'late':
          // allows, within POLICY_TIMEOUT_MS but after the test's client has given up
          setTimeout(() => answer(200, JSON.stringify({ result: { allow: true } })), 400).unref();
          return;
        case 'error':
          return answer(500, JSON.stringify({ code: 'internal_error' }));
        case 'malformed':
          return answer(200, JSON.stringify({ result: 'yes' }));
        case 'country': {
          // a policy that refuses by a claim: this fake treats service accounts as "outside the allowed countries"
          const allowed = ask.input.claims.principal_type === 'user';
          return answer(200, JSON.stringify({ result: allowed ? { allow: true } : { allow: false, reason: 'country not allowed' } }));
        }
      }
    });
  });
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1/data/gatehouse/authz`,
    asked,
    behaviour,
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe.skipIf(!available)('policy hook (POLICY_URL) after an RBAC allow', () => {
  let db: TestDatabase;
  let app: TestApp;
  let pdp: Awaited<ReturnType<typeof fakePdp>>;
  let projection: FakeHttp;
  let runner: FakeHttp;
  let aggregate: FakeAggregate;
  let adminToken: string;
  let member: { accessToken: string; userId: string };
  let grpcPort: number;
  let routingFile: string;

  beforeAll(async () => {
    [db, pdp, projection, runner, aggregate] = await Promise.all([
      createTestDatabase(),
      fakePdp(),
      fakeHttp('policy-proj'),
      fakeHttp('policy-runner'),
      fakeAggregate('policy-agg'),
    ]);
    const routing = {
      aggregate: { placement: { '*': 'a1' }, shards: { a1: [aggregate.endpoint] } },
      projection: { placement: { '*': 'p1' }, shards: { p1: [projection.endpoint] } },
      runner: { placement: { '*': 'r1' }, shards: { r1: [runner.endpoint] } },
      forward: { rules: [{ path_prefix: '/orders', right: 'queries.run', resource: '{1}' }] },
    };
    routingFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gh-policy-')), 'routing.json');
    fs.writeFileSync(routingFile, JSON.stringify(routing));
    grpcPort = await freePort();
    app = await bootApp({
      DATABASE_URL: db.url,
      MASTER_KEY,
      BOOTSTRAP_ADMIN_EMAIL: ADMIN_EMAIL,
      BOOTSTRAP_ADMIN_PASSWORD: ADMIN_PASSWORD,
      AUTH_IP_LIMIT: '100000',
      ROUTING_FILE: routingFile,
      GRPC_PORT: String(grpcPort),
      POLICY_URL: pdp.url,
      POLICY_TIMEOUT_MS: String(POLICY_TIMEOUT_MS),
    });
    adminToken = await signinAdmin(app.url);
    await createTenant(app.url, adminToken, 'acme');
    member = await userWithRole(app.url, adminToken, 'acme', 'tenant_member', 'policy-member');
  });
  afterAll(async () => {
    await app?.close();
    await Promise.all([pdp, projection, runner, aggregate].map((fake) => fake?.stop()));
    await db?.drop();
  });
  beforeEach(() => {
    pdp.behaviour.mode = 'allow';
  });

  // Each test uses its own view name so the ≤ 1 s decision cache of an earlier test does not answer for it.
  const query = (view: string, token = member.accessToken) =>
    call(app.url, 'POST', `/v1/query/${view}?x=1`, { token, json: { q: 1 }, headers: inTenant('acme') });

  it('asks the PDP with the input of CONTRACT §13 and forwards when it allows', async () => {
    const before = projection.calls.length;
    // an encoded "-" (a view type is a strict token since issue 11, so no encoded space)
    const result = await query('orders%2Dopen');
    expect(result.status, result.text).toBe(200);
    expect(projection.calls.length).toBe(before + 1);
    const ask = pdp.asked.at(-1)!;
    expect(ask.input).toEqual({
      method: 'POST',
      path: ['v1', 'query', 'orders-open'],
      tenant: 'acme',
      right: 'queries.run',
      resource: 'orders-open',
      claims: { sub: member.userId, principal_type: 'user', amr: ['pwd'] },
      client_ip: '127.0.0.1',
      client_cert_subject: null,
    });
  });

  it('refuses with 403 forbidden when the PDP denies, logs the reason without showing it, and sends nothing upstream', async () => {
    pdp.behaviour.mode = 'deny';
    const before = projection.calls.length;
    const result = await query('denied-view');
    expect(result.status).toBe(403);
    expect(result.json).toMatchObject({ code: 'forbidden', status: 403 });
    expect(result.text).not.toContain('weekends');
    expect(projection.calls.length).toBe(before);
    const line = app
      .logs()
      .split('\n')
      .filter((entry) => entry.includes(result.json.request_id as string))
      .join('\n');
    expect(line).toContain('deny: policy: method not allowed for this right on weekends');
  });

  it.each(['slow', 'error', 'malformed'] as const)('fails closed with 503 unavailable when the PDP is %s', async (mode) => {
    pdp.behaviour.mode = mode;
    const before = projection.calls.length;
    const started = performance.now();
    const result = await query(`closed-${mode}`);
    expect(result.status, result.text).toBe(503);
    expect(result.json).toMatchObject({ code: 'unavailable' });
    expect(performance.now() - started).toBeLessThan(POLICY_TIMEOUT_MS + 1000);
    expect(projection.calls.length).toBe(before);
  });

  it('fails closed when the PDP is down (connection refused)', async () => {
    const other = await bootApp({
      DATABASE_URL: db.url,
      MASTER_KEY,
      AUTH_IP_LIMIT: '100000',
      ROUTING_FILE: routingFile,
      POLICY_URL: `http://127.0.0.1:${await freePort()}/v1/data/gatehouse/authz`,
    });
    try {
      const before = projection.calls.length;
      const result = await call(other.url, 'POST', '/v1/query/down-view', {
        token: member.accessToken,
        json: {},
        headers: inTenant('acme'),
      });
      expect(result.status, result.text).toBe(503);
      expect(result.json).toMatchObject({ code: 'unavailable' });
      expect(projection.calls.length).toBe(before);
    } finally {
      await other.close();
    }
  });

  it('a client gone while the policy is asked leaves no in-flight slot held (IP_IN_FLIGHT_LIMIT)', async () => {
    const other = await bootApp({
      DATABASE_URL: db.url,
      MASTER_KEY,
      AUTH_IP_LIMIT: '100000',
      ROUTING_FILE: routingFile,
      POLICY_URL: pdp.url,
      POLICY_TIMEOUT_MS: String(POLICY_TIMEOUT_MS),
      IP_IN_FLIGHT_LIMIT: '2',
    });
    try {
      pdp.behaviour.mode = 'late';
      // the proxied fast path (query) and a route through Nest's guards (runner): each client hangs up
      // before the policy answers, so the call is admitted after its response has already closed
      const gone = [
        ['/v1/query/gone-view', member.accessToken],
        ['/v1/query/gone-view', member.accessToken],
        ['/admin/runner/gone', adminToken],
        ['/admin/runner/gone', adminToken],
      ].map(async ([target, token]) => {
        const controller = new AbortController();
        const pending = fetch(`${other.url}${target}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token!}`, 'content-type': 'application/json', ...inTenant('acme') },
          body: '{}',
          signal: controller.signal,
        }).catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, 100));
        controller.abort();
        await pending;
      });
      await Promise.all(gone);
      // the policy answers, the abandoned calls go on and end
      await new Promise((resolve) => setTimeout(resolve, 1000));
      pdp.behaviour.mode = 'allow';
      for (let i = 0; i < 3; i++) {
        const result = await call(other.url, 'POST', '/v1/query/after-view', {
          token: member.accessToken,
          json: {},
          headers: inTenant('acme'),
        });
        expect(result.status, result.text).toBe(200);
      }
    } finally {
      await other.close();
    }
  });

  it('refuses by a claim (a country-style rule): users pass, a service account is denied', async () => {
    pdp.behaviour.mode = 'country';
    const created = await call(app.url, 'POST', '/admin/service-accounts', { token: adminToken, json: { name: 'policy-sa' } });
    expect(created.status, created.text).toBe(201);
    const assigned = await call(app.url, 'POST', '/admin/assignments', {
      token: adminToken,
      json: { principal_id: created.json.id, tenant_id: 'acme', role_id: 'tenant_member' },
    });
    expect(assigned.status, assigned.text).toBe(201);
    const token = await call(app.url, 'POST', '/v1/auth/token', {
      json: { grant_type: 'client_credentials', client_id: created.json.client_id, client_secret: created.json.client_secret },
    });
    expect(token.status, token.text).toBe(200);
    expect((await query('country-view')).status).toBe(200);
    const refused = await query('country-view', token.json.access_token as string);
    expect(refused.status).toBe(403);
    expect(pdp.asked.at(-1)!.input.claims.principal_type).toBe('service_account');
  });

  it('is not asked when RBAC already denied', async () => {
    const outsider = await userWithRole(app.url, adminToken, null, 'tenant_viewer', 'policy-outsider');
    const asked = pdp.asked.length;
    const result = await call(app.url, 'POST', '/v1/commands/order/o-1', {
      token: outsider.accessToken,
      json: { command_id: 'c1', command_type: 'order.place', payload: {} },
      headers: inTenant('acme'),
    });
    expect(result.status).toBe(403);
    expect(pdp.asked.length).toBe(asked);
  });

  it('covers the HTTP command wrapper, gRPC SubmitCommand, the runner and the WebSocket handshake', async () => {
    pdp.behaviour.mode = 'deny';
    const command = await call(app.url, 'POST', '/v1/commands/order/o-2', {
      token: member.accessToken,
      json: { command_id: 'c2', command_type: 'order.place', payload: {} },
      headers: inTenant('acme'),
    });
    expect(command.status).toBe(403);
    expect(pdp.asked.at(-1)!.input).toMatchObject({ method: 'POST', path: ['v1', 'commands', 'order', 'o-2'], right: 'commands.submit' });

    const client = commandClient(grpcPort);
    try {
      const submitted = await submitCommand(
        client,
        { aggregate_type: 'invoice', aggregate_id: 'i-1', command_id: 'g1', command_type: 'invoice.raise', payload: Buffer.from('{}') },
        { authorization: `Bearer ${member.accessToken}`, 'x-tenant-id': 'acme' },
      );
      expect(submitted.error?.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(pdp.asked.at(-1)!.input).toMatchObject({
        path: ['aggregate.gateway.v1.CommandService', 'SubmitCommand'],
        resource: 'invoice',
        client_ip: '127.0.0.1',
      });
    } finally {
      client.close();
    }

    const runnerCall = await call(app.url, 'GET', '/admin/runner/jobs?state=running', { token: adminToken });
    expect(runnerCall.status).toBe(403);
    expect(pdp.asked.at(-1)!.input).toMatchObject({
      method: 'GET',
      path: ['admin', 'runner', 'jobs'],
      right: 'runner.admin',
      tenant: null,
    });

    const status = await new Promise<number>((resolve) => {
      const socket = new WebSocket(`${app.url.replace('http', 'ws')}/v1/subscribe/orders`, {
        headers: { authorization: `Bearer ${member.accessToken}`, 'x-tenant-id': 'acme' },
      });
      socket.once('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0));
      socket.once('open', () => {
        socket.close();
        resolve(101);
      });
      socket.once('error', () => undefined);
    });
    expect(status).toBe(403);
    expect(pdp.asked.at(-1)!.input).toMatchObject({ method: 'GET', right: 'streams.subscribe', resource: 'orders' });
  });

  it('is asked for forward-auth decisions too, also once the token and grants are in memory (CONTRACT §10)', async () => {
    const decide = (resource: string) =>
      call(app.url, 'GET', '/v1/authz/forward', {
        token: member.accessToken,
        headers: { ...inTenant('acme'), 'x-original-method': 'GET', 'x-original-uri': `/orders/${resource}/lines?x=1` },
      });
    // the member's token and grants are known from the tests before: only the policy hook makes this wait
    const allowed = await decide('fwd-allowed');
    expect(allowed.status, allowed.text).toBe(200);
    expect(allowed.headers.get('x-auth-principal-id')).toBe(member.userId);
    expect(pdp.asked.at(-1)!.input).toMatchObject({
      method: 'GET',
      path: ['orders', 'fwd-allowed', 'lines'],
      right: 'queries.run',
      resource: 'fwd-allowed',
    });
    pdp.behaviour.mode = 'deny';
    const denied = await decide('fwd-denied');
    expect(denied.status).toBe(403);
    expect(denied.headers.get('x-gatehouse-error')).toBe('forbidden');
    expect(pdp.asked.at(-1)!.input).toMatchObject({ resource: 'fwd-denied' });
  });

  it('reuses a decision for at most one second', async () => {
    const asked = pdp.asked.length;
    expect((await query('cached-view')).status).toBe(200);
    expect((await query('cached-view')).status).toBe(200);
    expect(pdp.asked.length).toBe(asked + 1);
    pdp.behaviour.mode = 'deny';
    const deadline = Date.now() + 2000;
    let status = 200;
    while (status === 200 && Date.now() < deadline) {
      status = (await query('cached-view')).status;
      if (status === 200) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(status).toBe(403);
  });

  it('exports decision counts and latency', async () => {
    const metrics = await call(app.url, 'GET', '/metrics');
    expect(metrics.text).toMatch(/gatehouse_policy_decisions_total\{outcome="allow"\} [1-9]/);
    expect(metrics.text).toMatch(/gatehouse_policy_decisions_total\{outcome="deny"\} [1-9]/);
    expect(metrics.text).toMatch(/gatehouse_policy_decisions_total\{outcome="error"\} [1-9]/);
    expect(metrics.text).toContain('gatehouse_policy_decision_duration_seconds_bucket');
  });
});
