import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_EMAIL, ADMIN_PASSWORD } from '../support/admin-fixtures';
import { bootApp, type TestApp } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/database';
import {
  commandClient,
  fakeAggregate,
  fakeHttp,
  submitCommand,
  WebSocket,
  type FakeAggregate,
  type FakeHttp,
} from '../support/fake-upstreams';
import { http } from '../support/http';
import { freePort, waitFor } from '../support/process';
import { servicesAvailable } from '../support/services';
import { makeSignedCertificate, makeTestCa, type TestCa } from '../support/test-certificates';

const available = servicesAvailable({ postgres: true });
const MASTER_KEY = Buffer.alloc(32, 31).toString('base64');

describe.skipIf(!available)('mTLS to upstreams (CONTRACT §13)', () => {
  let db: TestDatabase;
  let app: TestApp;
  let dir: string;
  let trusted: TestCa;
  let stranger: TestCa;
  let grpcPort: number;
  let token: string;
  /** Gatehouse's own files, rewritten by the rotation test */
  const gatehouseFiles = { ca: '', cert: '', key: '' };
  let projection: FakeHttp;
  let aggregate: FakeAggregate;
  let impostorAggregate: FakeAggregate;
  let impostor: FakeHttp;
  let plaintext: FakeHttp;
  let runner: FakeHttp;

  beforeAll(async () => {
    db = await createTestDatabase();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-mtls-'));
    trusted = makeTestCa(dir, 'upstream-ca');
    stranger = makeTestCa(dir, 'stranger-ca');
    const server = makeSignedCertificate(dir, trusted, 'upstream-server', 'IP:127.0.0.1,DNS:localhost');
    const impostorServer = makeSignedCertificate(dir, stranger, 'impostor-server', 'IP:127.0.0.1,DNS:localhost');
    const client = makeSignedCertificate(dir, trusted, 'gatehouse-client');
    // the upstreams require a client certificate the trusted CA signed
    const serverTls = { ca: trusted.cert, cert: server.cert, key: server.key };
    const impostorTls = { ca: trusted.cert, cert: impostorServer.cert, key: impostorServer.key };
    [projection, aggregate, runner, impostor, plaintext, impostorAggregate] = await Promise.all([
      fakeHttp('tls-proj', 0, { tls: serverTls }),
      fakeAggregate('tls-agg', 0, { tls: serverTls }),
      fakeHttp('tls-runner', 0, { tls: serverTls }),
      fakeHttp('impostor', 0, { tls: impostorTls }),
      fakeHttp('plaintext'),
      fakeAggregate('impostor-agg', 0, { tls: impostorTls }),
    ]);
    Object.assign(gatehouseFiles, {
      ca: path.join(dir, 'gatehouse-ca.pem'),
      cert: path.join(dir, 'gatehouse-client-current.pem'),
      key: path.join(dir, 'gatehouse-client-current.key'),
    });
    fs.copyFileSync(trusted.cert, gatehouseFiles.ca);
    fs.copyFileSync(client.cert, gatehouseFiles.cert);
    fs.copyFileSync(client.key, gatehouseFiles.key);
    const routing = {
      aggregate: {
        placement: { acme: 'a1', impostor: 'a-bad' },
        shards: { a1: [aggregate.endpoint], 'a-bad': [impostorAggregate.endpoint] },
      },
      projection: {
        placement: { acme: 'p1', impostor: 'bad', plain: 'plain', named: 'named' },
        shards: {
          p1: [projection.endpoint],
          bad: [impostor.endpoint],
          plain: [plaintext.endpoint],
          p2: [projection.endpoint],
          // a host name: verified against the certificate's DNS name (and sent as SNI)
          named: [projection.endpoint.replace('127.0.0.1', 'localhost')],
        },
      },
      runner: { placement: { '*': 'r1' }, shards: { r1: [runner.endpoint] } },
    };
    const routingFile = path.join(dir, 'routing.json');
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
      UPSTREAM_TIMEOUT_MS: '3000',
      // every attempt here fails the same way: keep the breaker out of the picture
      UPSTREAM_BREAKER_FAILURES: '1000',
      UPSTREAM_TLS_CA_FILE: gatehouseFiles.ca,
      UPSTREAM_TLS_CERT_FILE: gatehouseFiles.cert,
      UPSTREAM_TLS_KEY_FILE: gatehouseFiles.key,
    });
    const signin = await http(app.url, 'POST', '/v1/auth/signin', { json: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } });
    expect(signin.status, signin.text).toBe(200);
    token = signin.json.access_token;
  });
  afterAll(async () => {
    await app?.close();
    await Promise.all([projection, aggregate, runner, impostor, plaintext, impostorAggregate].map((fake) => fake?.stop()));
    await db?.drop();
  });

  const query = (tenant: string) =>
    http(app.url, 'POST', '/v1/query/orders', { json: { filter: 'open' }, token, headers: { 'x-tenant-id': tenant } });

  it('proxies HTTP over TLS presenting the client certificate', async () => {
    const result = await query('acme');
    expect(result.status, result.text).toBe(200);
    expect(result.json.served_by).toBe('tls-proj');
    expect(projection.calls.at(-1)?.clientCert).toBe('gatehouse-client');
    const runnerCall = await http(app.url, 'GET', '/admin/runner/jobs?state=open', { token });
    expect(runnerCall.status, runnerCall.text).toBe(200);
    expect(runner.calls.at(-1)).toMatchObject({ url: '/jobs?state=open', clientCert: 'gatehouse-client' });
  });

  it('calls the aggregate over gRPC with TLS and the client certificate', async () => {
    // the fake aggregate refuses a handshake without a client certificate its CA signed
    const client = commandClient(grpcPort);
    const result = await submitCommand(
      client,
      { aggregate_type: 'order', aggregate_id: 'o-1', command_id: 'c-tls-1', command_type: 'place', payload: Buffer.from('{}') },
      { authorization: `Bearer ${token}`, 'x-tenant-id': 'acme' },
    );
    client.close();
    expect(result.error).toBeNull();
    expect(aggregate.calls.at(-1)?.request.command_id).toBe('c-tls-1');
  });

  it('relays a WebSocket over TLS', async () => {
    const echo = (tenant: string) => {
      const socket = new WebSocket(`${app.url.replace('http', 'ws')}/v1/subscribe/orders`, {
        headers: { authorization: `Bearer ${token}`, 'x-tenant-id': tenant },
      });
      return new Promise<string>((resolve, reject) => {
        socket.once('open', () => socket.send('hello'));
        socket.once('message', (data) => {
          socket.close();
          resolve(String(data));
        });
        socket.once('error', reject);
        socket.once('unexpected-response', (_request, response) => reject(new Error(`handshake ${response.statusCode}`)));
      });
    };
    const wsCalls = () => projection.calls.filter((call) => call.method === 'WS');
    const before = wsCalls().length;
    expect(await echo('acme')).toBe('tls-proj:hello');
    const byAddress = wsCalls()[before]!;
    expect(byAddress.clientCert).toBe('gatehouse-client');
    // an IP endpoint: no SNI (RFC 6066 forbids addresses there); Host as the URL says
    expect(byAddress.serverName).toBe(false);
    expect(byAddress.headers.host).toBe(projection.endpoint);
    expect(await echo('named')).toBe('tls-proj:hello');
    const byName = wsCalls()[before + 1]!;
    expect(byName.clientCert).toBe('gatehouse-client');
    // a host name: sent as SNI, and the certificate was checked against it
    expect(byName.serverName).toBe('localhost');
    expect(byName.headers.host).toBe(projection.endpoint.replace('127.0.0.1', 'localhost'));
  });

  it('answers 502 for a server the CA does not vouch for, and never falls back to plaintext', async () => {
    const impostorCalls = impostor.calls.length;
    const refused = await query('impostor');
    expect(refused.status, refused.text).toBe(502);
    expect(refused.json.code).toBe('upstream_unavailable');
    expect(impostor.calls.length).toBe(impostorCalls);
    const plain = await query('plain');
    expect(plain.status, plain.text).toBe(502);
    expect(plaintext.calls).toHaveLength(0);
    const command = await http(app.url, 'POST', '/v1/commands/order/o-2', {
      token,
      headers: { 'x-tenant-id': 'impostor' },
      json: { command_id: 'c-impostor', command_type: 'place', payload: {} },
    });
    expect(command.status, command.text).toBe(502);
    expect(impostorAggregate.calls).toHaveLength(0);
  });

  it('refuses a WebSocket to a server the CA does not vouch for, or one without TLS, with 502', async () => {
    const handshake = (tenant: string) =>
      new Promise<number>((resolve, reject) => {
        const socket = new WebSocket(`${app.url.replace('http', 'ws')}/v1/subscribe/orders`, {
          headers: { authorization: `Bearer ${token}`, 'x-tenant-id': tenant },
        });
        socket.once('open', () => {
          socket.close();
          reject(new Error('the handshake succeeded'));
        });
        socket.once('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0));
        socket.once('error', reject);
      });
    const impostorCalls = impostor.calls.length;
    expect(await handshake('impostor')).toBe(502);
    expect(impostor.calls.length).toBe(impostorCalls);
    expect(await handshake('plain')).toBe(502);
    expect(plaintext.calls).toHaveLength(0);
  });

  it('asks rebalancing readiness over TLS too', async () => {
    const plan = await http(app.url, 'POST', '/admin/rebalancing/plans', {
      token,
      json: { service_kind: 'projection', tenant_id: 'acme', target_shard: 'p2' },
    });
    expect(plan.status, plan.text).toBe(201);
    expect(plan.json.checks).toEqual([{ endpoint: projection.endpoint, ready: true, reason: null }]);
    expect(projection.calls.at(-1)).toMatchObject({ url: '/v1/readiness/acme', clientCert: 'gatehouse-client' });
  });

  it('picks up rotated certificates without a restart', async () => {
    // the impostor's CA joins the bundle: its server is now vouched for
    fs.writeFileSync(gatehouseFiles.ca, Buffer.concat([fs.readFileSync(trusted.cert), fs.readFileSync(stranger.cert)]));
    await waitFor(async () => (await query('impostor')).status === 200, 10_000, 200);
    // a new client certificate: the upstream sees the new subject on new connections
    const renewed = makeSignedCertificate(dir, trusted, 'gatehouse-client-2');
    fs.writeFileSync(gatehouseFiles.key, fs.readFileSync(renewed.key));
    fs.writeFileSync(gatehouseFiles.cert, fs.readFileSync(renewed.cert));
    await waitFor(
      async () => (await query('acme')).status === 200 && projection.calls.at(-1)?.clientCert === 'gatehouse-client-2',
      10_000,
      200,
    );
    expect(app.logs()).toMatch(/upstream TLS material reloaded/);
  });
});
