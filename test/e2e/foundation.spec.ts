import { spawnSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, type TestApp } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { http } from '../support/http';
import { spawnGatehouse, waitFor } from '../support/process';
import { NATS_URL, servicesAvailable } from '../support/services';
import { startTcpProxy } from '../support/tcp-proxy';

const available = servicesAvailable({ postgres: true, nats: true });

describe('embedded defaults (no DATABASE_URL, no NATS_URL)', () => {
  it('starts and answers /health and /ready with 200', async () => {
    const app = await bootApp({ DATABASE_URL: undefined, NATS_URL: undefined });
    try {
      const health = await http(app.url, 'GET', '/health');
      expect(health.status).toBe(200);
      expect(health.json).toMatchObject({ status: 'ok', node: expect.stringMatching(/^v24\./) });
      const ready = await http(app.url, 'GET', '/ready');
      expect(ready.status).toBe(200);
      expect(ready.json.checks.database).toBe('ok');
    } finally {
      await app.close();
    }
  });
});

/** The JSON request lines of `correlationId` in a process's log output. */
function requestLines(logs: string, correlationId: string): Array<Record<string, unknown>> {
  return logs
    .split('\n')
    .filter((entry) => entry.startsWith('{'))
    .map((entry) => JSON.parse(entry) as Record<string, unknown>)
    .filter((entry) => entry.correlation_id === correlationId && entry.msg === 'request');
}

describe.skipIf(!available)('on PostgreSQL and NATS', () => {
  let db: TestDatabase;
  let app: TestApp;

  beforeAll(async () => {
    db = await createTestDatabase();
    app = await bootApp({ DATABASE_URL: db.url, NATS_URL });
  });
  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });

  it('is ready with database and NATS checks', async () => {
    const ready = await http(app.url, 'GET', '/ready');
    expect(ready.status).toBe(200);
    expect(ready.json).toEqual({ status: 'ready', checks: { database: 'ok', nats: 'ok', routing: 'ok' } });
  });

  it('gives every response a request id and a generated correlation id', async () => {
    const first = await http(app.url, 'GET', '/health');
    const second = await http(app.url, 'GET', '/health');
    expect(first.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(first.headers.get('x-request-id')).not.toBe(second.headers.get('x-request-id'));
    expect(first.headers.get('x-correlation-id')).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
  });

  it('keeps a valid x-correlation-id', async () => {
    const result = await http(app.url, 'GET', '/health', { headers: { 'x-correlation-id': 'order-42.retry:1' } });
    expect(result.headers.get('x-correlation-id')).toBe('order-42.retry:1');
  });

  it.each(['has space', 'x'.repeat(200), 'evil<script>', '%0d%0aSet-Cookie:x=y'])(
    'replaces a malformed x-correlation-id (%s)',
    async (bad) => {
      const result = await http(app.url, 'GET', '/health', { headers: { 'x-correlation-id': bad } });
      const got = result.headers.get('x-correlation-id');
      expect(got).not.toBe(bad);
      expect(got).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
    },
  );

  it('never reflects CR/LF from a raw correlation header into the response', async () => {
    const port = Number(new URL(app.url).port);
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.write('GET /health HTTP/1.1\r\nHost: x\r\nx-correlation-id: abc\rSet-Cookie: pwned=1\r\nConnection: close\r\n\r\n');
      });
      let data = '';
      socket.on('data', (chunk) => (data += chunk.toString('latin1')));
      socket.on('end', () => resolve(data));
      socket.on('error', reject);
    });
    expect(raw.toLowerCase()).not.toContain('set-cookie: pwned');
    expect(raw.toLowerCase()).not.toMatch(/x-correlation-id: abc\r?set-cookie/);
  });

  it('continues a valid traceparent with the same trace id and a new parent id', async () => {
    const inbound = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const result = await http(app.url, 'GET', '/health', { headers: { traceparent: inbound } });
    const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(result.headers.get('traceparent') ?? '');
    expect(match?.[1]).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(match?.[2]).not.toBe('00f067aa0ba902b7');
  });

  it.each([
    '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
    'garbage',
    '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
  ])('starts a new trace for an invalid traceparent (%s)', async (bad) => {
    const result = await http(app.url, 'GET', '/health', { headers: { traceparent: bad } });
    const value = result.headers.get('traceparent') ?? '';
    expect(value).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/);
    expect(value).not.toContain('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(value).not.toContain('0'.repeat(32));
  });

  const expectProblem = (result: Awaited<ReturnType<typeof http>>, status: number, code: string) => {
    expect(result.status).toBe(status);
    expect(result.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(result.json).toMatchObject({ type: `urn:gatehouse:error:${code}`, status, code });
    expect(result.json.request_id).toBe(result.headers.get('x-request-id'));
    expect(typeof result.json.title).toBe('string');
    expect(result.text).not.toMatch(/at [\w.]+ \(|node_modules|\.ts:\d+|prisma|fastify/i);
  };

  it('answers an unknown route with 404 not_found problem details', async () => {
    expectProblem(await http(app.url, 'GET', '/no/such/route'), 404, 'not_found');
  });

  it('answers malformed JSON with 400 malformed_json', async () => {
    const result = await http(app.url, 'POST', '/v1/auth/signin', { body: '{"email":', headers: { 'content-type': 'application/json' } });
    expectProblem(result, 400, 'malformed_json');
  });

  it('answers a wrong content type with 415', async () => {
    const result = await http(app.url, 'POST', '/v1/auth/signin', { body: 'email=a', headers: { 'content-type': 'text/plain' } });
    expectProblem(result, 415, 'unsupported_media_type');
  });

  it('refuses an auth body over 16 KiB with 413', async () => {
    const result = await http(app.url, 'POST', '/v1/auth/signin', { json: { email: 'a@example.com', password: 'p'.repeat(20 * 1024) } });
    expectProblem(result, 413, 'payload_too_large');
  });

  it('answers invalid fields with 400 validation_failed and their paths', async () => {
    const result = await http(app.url, 'POST', '/v1/auth/signin', { json: { email: 'not-an-email' } });
    expectProblem(result, 400, 'validation_failed');
    const paths = (result.json.errors as Array<{ path: string }>).map((error) => error.path).sort();
    expect(paths).toEqual(['email', 'password']);
    expect(result.text).not.toContain('not-an-email');
  });

  it('refuses a protected route without a token with 401 and WWW-Authenticate', async () => {
    const result = await http(app.url, 'GET', '/v1/auth/me');
    expectProblem(result, 401, 'unauthenticated');
    expect(result.headers.get('www-authenticate')).toBe('Bearer');
  });

  it('exposes Prometheus metrics', async () => {
    await http(app.url, 'GET', '/health');
    const metrics = await http(app.url, 'GET', '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.text).toMatch(/gatehouse_http_requests_total\{method="GET",route="\/health",status="200"\} \d+/);
    expect(metrics.text).toContain('gatehouse_http_request_duration_seconds_bucket');
    expect(metrics.text).toContain('gatehouse_rate_limited_total');
  });

  it('writes one JSON log line per request with ids, and no Authorization or Cookie values', async () => {
    const result = await http(app.url, 'GET', '/v1/auth/me', {
      headers: { authorization: 'Bearer SECRET-BEARER-7f3a9', cookie: 'sid=SECRET-COOKIE-77ab', 'x-correlation-id': 'log-check-1' },
    });
    await http(app.url, 'POST', '/v1/auth/signin', { json: { email: 'nobody@example.com', password: 'SECRET-PASSWORD-0x91 long enough' } });
    const requestId = result.headers.get('x-request-id')!;
    await waitFor(() => app.logs().includes(requestId), 2000);
    const logs = app.logs();
    expect(logs).not.toContain('SECRET-BEARER-7f3a9');
    expect(logs).not.toContain('SECRET-COOKIE-77ab');
    expect(logs).not.toContain('SECRET-PASSWORD-0x91');
    const line = logs
      .split('\n')
      .filter((entry) => entry.startsWith('{'))
      .map((entry) => JSON.parse(entry) as Record<string, unknown>)
      .find((entry) => entry.request_id === requestId && entry.msg === 'request');
    expect(line).toMatchObject({ correlation_id: 'log-check-1', method: 'GET', route: '/v1/auth/me', status: 401 });
    expect(line?.trace_id).toMatch(/^[0-9a-f]{32}$/);
    expect(typeof line?.duration_ms).toBe('number');
  });

  it('writes the request line (status 499) for a client that hung up after sending its whole body, while the answer was being worked out', async () => {
    const port = Number(new URL(app.url).port);
    const correlationId = `hung-up-later-${Date.now()}`;
    const body = JSON.stringify({ email: 'nobody-hangs-up@example.com', password: 'a password long enough 123' });
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    // the whole request, then gone while the password is checked (the body was read by then)
    socket.write(
      `POST /v1/auth/signin HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-correlation-id: ${correlationId}\r\n\r\n${body}`,
    );
    await new Promise((resolve) => setTimeout(resolve, 5));
    socket.destroy();
    await waitFor(() => app.logs().includes(correlationId), 3000);
    // the handler still finishes: give it time to (wrongly) write a second line
    await new Promise((resolve) => setTimeout(resolve, 300));
    const lines = requestLines(app.logs(), correlationId);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ method: 'POST', route: '/v1/auth/signin', status: 499 });
  });

  it('writes the request line (status 499) for a request whose client hung up before the answer', async () => {
    const port = Number(new URL(app.url).port);
    const correlationId = `hung-up-${Date.now()}`;
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    // headers and part of a declared body, then gone
    socket.write(
      `POST /v1/auth/signin HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\nx-correlation-id: ${correlationId}\r\n\r\n{"email":`,
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    socket.destroy();
    await waitFor(() => app.logs().includes(correlationId), 3000);
    const lines = requestLines(app.logs(), correlationId);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ method: 'POST', route: '/v1/auth/signin', status: 499 });
    // the client's failure, not the database's
    expect(app.logs()).not.toMatch(new RegExp(`"correlation_id":"${correlationId}"[^\\n]*dependency unavailable`));
  });
});

describe.skipIf(!available)('readiness', () => {
  it('stays 200 but reports degraded while the database is unreachable, and ready again after', async () => {
    const db = await createTestDatabase();
    const proxy = await startTcpProxy('127.0.0.1', 5432);
    const url = new URL(db.url);
    url.port = String(proxy.port);
    const app = await bootApp({ DATABASE_URL: url.toString() });
    try {
      const ready = await http(app.url, 'GET', '/ready');
      expect(ready.status).toBe(200);
      expect(ready.json).toMatchObject({ status: 'ready', checks: { database: 'ok' } });
      proxy.cut();
      // a shared dependency down must not take every replica out of the balancer (CONTRACT §8)
      await waitFor(async () => (await http(app.url, 'GET', '/ready')).json?.checks?.database === 'failing', 5000);
      const degraded = await http(app.url, 'GET', '/ready');
      expect(degraded.status).toBe(200);
      expect(degraded.json).toMatchObject({ status: 'degraded', checks: { database: 'failing' } });
      expect((await http(app.url, 'GET', '/health')).status).toBe(200);
      proxy.restore();
      await waitFor(async () => (await http(app.url, 'GET', '/ready')).json?.status === 'ready', 15_000, 200);
    } finally {
      await app.close();
      await proxy.close();
      await db.drop();
    }
  });

  it('turns 503 at once on SIGTERM, finishes, and exits 0', async () => {
    const db = await createTestDatabase();
    const gatehouse = await spawnGatehouse({ DATABASE_URL: db.url, NATS_URL, SHUTDOWN_DRAIN_MS: '1500' }, 'shutdown');
    try {
      expect((await http(gatehouse.url, 'GET', '/ready')).status).toBe(200);
      gatehouse.child.kill('SIGTERM');
      await waitFor(async () => (await http(gatehouse.url, 'GET', '/ready')).status === 503, 1000, 20);
      // in-flight and new requests during the drain are still answered
      expect((await http(gatehouse.url, 'GET', '/health')).status).toBe(200);
      expect(await gatehouse.exited).toBe(0);
    } finally {
      await gatehouse.stop('SIGKILL');
      await db.drop();
    }
  });

  it('fails at start with one line naming a bad variable', () => {
    const result = spawnSync(process.execPath, [path.resolve(__dirname, '../../dist/main.js')], {
      env: { PATH: process.env.PATH, PORT: 'not-a-port' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(result.status).not.toBe(0);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/^config: PORT: /);
  });
});
