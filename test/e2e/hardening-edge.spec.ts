import fs from 'node:fs';
import nodeHttp from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, type TestApp } from '../support/app';
import { createTenant } from '../support/admin-fixtures';
import { signupUser } from '../support/auth-flows';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { commandClient, fakeAggregate, grpc, submitCommand, type FakeAggregate } from '../support/fake-upstreams';
import { http } from '../support/http';
import { freePort, spawnGatehouse } from '../support/process';
import { servicesAvailable } from '../support/services';

/**
 * Security hardening of the request edge (issue 11): 405 with Allow, 408 for stalled requests,
 * upstream gRPC internals hidden, CORS preflights from a real browser on another origin.
 */
const available = servicesAvailable({ postgres: true });
const CHROMIUM = '/usr/bin/chromium';
const MASTER_KEY = Buffer.alloc(32, 43).toString('base64');
const ADMIN_EMAIL = 'edge-root@example.com';
const ADMIN_PASSWORD = 'bootstrap admin password 123';
const REQUEST_TIMEOUT_MS = 1500;

interface Stalled {
  /** what the server wrote before closing */
  text: string;
  /** ms from the last byte sent to the close */
  closedAfterMs: number;
}

/** Writes `parts` and then nothing more; resolves when the server closes the connection. */
function stall(base: string, parts: string[]): Promise<Stalled> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: url.hostname, port: Number(url.port) });
    let text = '';
    let sentAt = 0;
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve({ text, closedAfterMs: performance.now() - sentAt }));
    socket.on('connect', () => {
      for (const part of parts) socket.write(part);
      sentAt = performance.now();
    });
    setTimeout(() => {
      socket.destroy();
      reject(new Error('the server kept a stalled connection open for 20 s'));
    }, 20_000).unref();
  });
}

describe.skipIf(!available)('security hardening of the request edge (issue 11)', () => {
  let db: TestDatabase;
  let app: TestApp;
  let base: string;
  let grpcPort: number;
  let aggregate: FakeAggregate;
  let adminToken: string;
  let page: nodeHttp.Server;
  let pageOrigin: string;

  beforeAll(async () => {
    [db, aggregate] = await Promise.all([createTestDatabase(), fakeAggregate('agg-edge')]);
    // the page the browser loads: another origin (another port) than Gatehouse
    page = nodeHttp.createServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/html' });
      response.end('<!doctype html><title>other origin</title>');
    });
    await new Promise<void>((resolve) => page.listen(0, '127.0.0.1', resolve));
    pageOrigin = `http://127.0.0.1:${(page.address() as net.AddressInfo).port}`;
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gh-edge-')), 'routing.json');
    fs.writeFileSync(file, JSON.stringify({ aggregate: { placement: { acme: 'a1' }, shards: { a1: [aggregate.endpoint] } } }));
    grpcPort = await freePort();
    app = await bootApp({
      DATABASE_URL: db.url,
      MASTER_KEY,
      BOOTSTRAP_ADMIN_EMAIL: ADMIN_EMAIL,
      BOOTSTRAP_ADMIN_PASSWORD: ADMIN_PASSWORD,
      AUTH_IP_LIMIT: '100000',
      ROUTING_FILE: file,
      GRPC_PORT: String(grpcPort),
      REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
      CORS_ORIGINS: pageOrigin,
    });
    base = app.url;
    const signin = await http(base, 'POST', '/v1/auth/signin', { json: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } });
    expect(signin.status, signin.text).toBe(200);
    adminToken = signin.json.access_token;
    await createTenant(base, adminToken, 'acme');
  });
  afterAll(async () => {
    await app?.close();
    await aggregate?.stop();
    await new Promise((resolve) => page?.close(resolve));
    await db?.drop();
  });

  it('an unsupported method on an existing path is 405 method_not_allowed with Allow; an unknown path stays 404', async () => {
    const signin = await http(base, 'DELETE', '/v1/auth/signin');
    expect(signin.status).toBe(405);
    // with CORS on, OPTIONS (the preflight) is answered on every path too
    expect(signin.headers.get('allow')).toBe('POST, OPTIONS');
    expect(signin.headers.get('content-type')).toContain('application/problem+json');
    expect(signin.json).toMatchObject({ code: 'method_not_allowed', status: 405 });

    const health = await http(base, 'PUT', '/health', { json: {} });
    expect(health.status).toBe(405);
    expect(health.headers.get('allow')!.split(', ')).toEqual(expect.arrayContaining(['GET', 'HEAD']));

    const withParams = await http(base, 'PUT', '/admin/users/some-id/disable', { token: adminToken });
    expect(withParams.status).toBe(405);
    expect(withParams.headers.get('allow')).toBe('POST, OPTIONS');

    const unknown = await http(base, 'GET', '/v1/no-such-thing');
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get('allow')).toBeNull();
    expect(unknown.json.code).toBe('not_found');
  });

  it('stalled headers are answered 408 request_timeout and closed within REQUEST_TIMEOUT_MS', async () => {
    const result = await stall(base, ['GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n']);
    expect(result.text).toMatch(/^HTTP\/1\.1 408 /);
    expect(result.text).toContain('application/problem+json');
    expect(result.text).toContain('"code":"request_timeout"');
    // the bound plus Node's check interval (a quarter of it) plus a busy machine's margin
    expect(result.closedAfterMs).toBeLessThan(REQUEST_TIMEOUT_MS + 3000);
    expect(result.closedAfterMs).toBeGreaterThan(REQUEST_TIMEOUT_MS - 200);
  });

  it('a stalled body is answered 408 request_timeout and closed within REQUEST_TIMEOUT_MS', async () => {
    const body = '{"email":"stall@example.com","password":"';
    const result = await stall(base, [
      `POST /v1/auth/signin HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n`,
      body,
    ]);
    expect(result.text).toMatch(/^HTTP\/1\.1 408 /);
    expect(result.text).toContain('"code":"request_timeout"');
    expect(result.closedAfterMs).toBeLessThan(REQUEST_TIMEOUT_MS + 3000);
    // a request that arrives in time is served as usual on the same server
    expect((await http(base, 'GET', '/health')).status).toBe(200);
  });

  it('the built server (main.ts, whose early listener Fastify adopts) answers stalled headers 408 within REQUEST_TIMEOUT_MS and keeps idle keep-alive connections past 5 s', async () => {
    const processDb = await createTestDatabase();
    const gatehouse = await spawnGatehouse(
      { DATABASE_URL: processDb.url, MASTER_KEY, REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS) },
      'timeout',
    );
    try {
      const result = await stall(gatehouse.url, ['GET /health HTTP/1.1\r\nHost: x\r\n']);
      expect(result.text).toMatch(/^HTTP\/1\.1 408 /);
      expect(result.text).toContain('"code":"request_timeout"');
      expect(result.closedAfterMs).toBeLessThan(REQUEST_TIMEOUT_MS + 3000);

      // an idle keep-alive connection outlives Node's 5 s default (edges keep theirs 60 s): the
      // second request 6 s later goes over the same socket and is answered
      const agent = new nodeHttp.Agent({ keepAlive: true, maxSockets: 1 });
      const get = () =>
        new Promise<{ status: number; reused: boolean }>((resolve, reject) => {
          const request = nodeHttp.get(`${gatehouse.url}/health`, { agent }, (response) => {
            response.resume();
            response.on('end', () => resolve({ status: response.statusCode ?? 0, reused: request.reusedSocket }));
          });
          request.on('error', reject);
        });
      try {
        expect(await get()).toEqual({ status: 200, reused: false });
        await new Promise((resolve) => setTimeout(resolve, 6000));
        expect(await get()).toEqual({ status: 200, reused: true });
      } finally {
        agent.destroy();
      }
    } finally {
      await gatehouse.stop();
      await processDb.drop();
    }
  }, 90_000);

  it('upstream gRPC INTERNAL, UNKNOWN and DATA_LOSS messages are replaced by a generic one and logged in full; other codes are relayed', async () => {
    const client = commandClient(grpcPort);
    const command = {
      aggregate_type: 'orders',
      aggregate_id: 'o-1',
      command_id: 'c-1',
      command_type: 'create',
      payload: Buffer.from('{}'),
    };
    const metadata = { authorization: `Bearer ${adminToken}`, 'x-tenant-id': 'acme' };
    try {
      for (const code of [grpc.status.INTERNAL, grpc.status.UNKNOWN, grpc.status.DATA_LOSS]) {
        const secret = `pq: relation "payroll_${code}" does not exist at db-7.internal:5432`;
        aggregate.state.errorCode = code;
        aggregate.state.errorDetails = secret;
        const { error } = await submitCommand(client, command, metadata);
        expect(error?.code).toBe(code);
        expect(error?.details).toBe('upstream error');
        expect(app.logs()).toContain(`payroll_${code}`);
        // the HTTP wrapper shows no upstream words either
        const viaHttp = await http(base, 'POST', '/v1/commands/orders/o-1', {
          token: adminToken,
          headers: { 'x-tenant-id': 'acme' },
          json: { command_id: 'c-2', command_type: 'create' },
        });
        expect(viaHttp.status).toBe(502);
        expect(viaHttp.text).not.toContain('payroll');
      }
      aggregate.state.errorCode = grpc.status.FAILED_PRECONDITION;
      aggregate.state.errorDetails = 'expected version 3, found 4';
      const { error } = await submitCommand(client, command, metadata);
      expect(error?.code).toBe(grpc.status.FAILED_PRECONDITION);
      expect(error?.details).toBe('expected version 3, found 4');
    } finally {
      aggregate.state.errorCode = undefined;
      aggregate.state.errorDetails = undefined;
      client.close();
    }
  });

  describe.skipIf(!fs.existsSync(CHROMIUM))('CORS from a real browser on another origin', () => {
    let browser: Browser;

    beforeAll(async () => {
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: [
          '--no-sandbox',
          '--disable-gpu',
          '--disable-background-networking',
          '--disable-component-update',
          '--no-first-run',
          '--disable-sync',
          '--disable-dev-shm-usage',
        ],
      });
    }, 60_000);
    afterAll(async () => {
      await browser?.close();
    });

    it('preflights allow GET, POST, PUT, PATCH, DELETE and the headers the API reads; others are blocked', async () => {
      const user = await signupUser(base);
      const context = await browser.newContext();
      try {
        const tab = await context.newPage();
        await tab.goto(pageOrigin);
        const results = await tab.evaluate(
          async ({ gatehouse, token, adminToken, userId, sessionId }) => {
            const call = async (path: string, init: RequestInit) => {
              try {
                const response = await fetch(gatehouse + path, init);
                return { status: response.status, requestId: response.headers.get('x-request-id') };
              } catch (error) {
                return { failed: String(error) };
              }
            };
            const read = {
              authorization: `Bearer ${token}`,
              'x-correlation-id': 'browser-1',
              traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
              'x-tenant-id': 'acme',
            };
            const admin = { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' };
            return {
              get: await call('/v1/auth/me', { headers: read }),
              post: await call('/v1/auth/refresh', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }),
              patch: await call(`/admin/users/${userId}`, {
                method: 'PATCH',
                headers: admin,
                body: JSON.stringify({ display_name: 'Browser' }),
              }),
              put: await call('/admin/routing/projection/placement', {
                method: 'PUT',
                headers: { ...admin, 'if-match': '"0"' },
                body: '{}',
              }),
              delete: await call(`/v1/auth/sessions/${sessionId}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } }),
              otherHeader: await call('/v1/auth/me', { headers: { ...read, 'x-not-allowed': '1' } }),
            };
          },
          { gatehouse: base, token: user.accessToken, adminToken, userId: user.userId, sessionId: user.sessionId },
        );
        expect(results.get).toMatchObject({ status: 200 });
        expect(results.get.requestId).toMatch(/.+/);
        expect(results.post).toMatchObject({ status: 401 });
        expect(results.patch).toMatchObject({ status: 200 });
        // a CORS success: the browser let the page read whatever status the write got
        expect(results.put).toHaveProperty('status');
        expect(results.delete).toMatchObject({ status: 204 });
        expect(results.otherHeader).toHaveProperty('failed');
      } finally {
        await context.close();
      }
    });

    it('a page on an origin outside CORS_ORIGINS cannot read any answer', async () => {
      const context = await browser.newContext();
      try {
        const tab = await context.newPage();
        // the same page server under another host name is another origin
        await tab.goto(pageOrigin.replace('127.0.0.1', 'localhost'));
        const result = await tab.evaluate(async (gatehouse) => {
          try {
            const response = await fetch(`${gatehouse}/health`);
            return { status: response.status };
          } catch (error) {
            return { failed: String(error) };
          }
        }, base);
        expect(result).toHaveProperty('failed');
      } finally {
        await context.close();
      }
    });
  });
});
