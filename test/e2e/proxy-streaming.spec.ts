import { createHash } from 'node:crypto';
import fs from 'node:fs';
import nodeHttp from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, type TestApp } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { http } from '../support/http';
import { waitFor } from '../support/process';
import { servicesAvailable } from '../support/services';

const available = servicesAvailable({ postgres: true });
const MASTER_KEY = Buffer.alloc(32, 23).toString('base64');
const ADMIN_EMAIL = 'stream-root@example.com';
const ADMIN_PASSWORD = 'bootstrap admin password 123';
const MIB = 1024 * 1024;

interface Received {
  firstByteAt: number;
  bytes: number;
  sha256: string;
  contentLength: string | undefined;
}

/** An upstream that records when a body's first byte arrives and what arrived in the end. */
async function recordingUpstream() {
  const requests: Received[] = [];
  let current: Received | undefined;
  let started = 0;
  const server = nodeHttp.createServer((request, response) => {
    const hash = createHash('sha256');
    const received: Received = { firstByteAt: 0, bytes: 0, sha256: '', contentLength: request.headers['content-length'] };
    current = received;
    started += 1;
    request.on('data', (chunk: Buffer) => {
      if (received.bytes === 0) received.firstByteAt = Date.now();
      received.bytes += chunk.length;
      hash.update(chunk);
    });
    request.on('end', () => {
      received.sha256 = hash.digest('hex');
      requests.push(received);
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ bytes: received.bytes }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    current: () => current,
    started: () => started,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * Sends a JSON body in two parts through Gatehouse: the first part, then (once `between`
 * resolves) the rest. Resolves with the status, the answer and when the last byte was written.
 */
function sendInTwoParts(
  url: string,
  headers: Record<string, string>,
  first: Buffer,
  rest: Buffer,
  between: () => Promise<void>,
): Promise<{ status: number; body: string; lastByteAt: number }> {
  return new Promise((resolve, reject) => {
    let lastByteAt = 0;
    const request = nodeHttp.request(url, { method: 'POST', headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode!, body: Buffer.concat(chunks).toString('utf8'), lastByteAt }));
    });
    request.on('error', reject);
    request.write(first);
    between().then(
      () => {
        lastByteAt = Date.now();
        request.end(rest);
      },
      (error: unknown) => {
        request.destroy();
        reject(error as Error);
      },
    );
  });
}

/** A JSON document of about `size` bytes. */
function jsonOfSize(size: number): Buffer {
  const filler = 'x'.repeat(size - 20);
  return Buffer.from(JSON.stringify({ filler }));
}

describe.skipIf(!available)('proxied request bodies are streamed to the upstream', () => {
  let db: TestDatabase;
  let app: TestApp;
  let upstream: Awaited<ReturnType<typeof recordingUpstream>>;
  let token: string;

  beforeAll(async () => {
    [db, upstream] = await Promise.all([createTestDatabase(), recordingUpstream()]);
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gh-routing-')), 'routing.json');
    fs.writeFileSync(file, JSON.stringify({ projection: { placement: { acme: 'p1' }, shards: { p1: [upstream.endpoint] } } }));
    app = await bootApp({
      DATABASE_URL: db.url,
      MASTER_KEY,
      BOOTSTRAP_ADMIN_EMAIL: ADMIN_EMAIL,
      BOOTSTRAP_ADMIN_PASSWORD: ADMIN_PASSWORD,
      ROUTING_FILE: file,
    });
    const signin = await http(app.url, 'POST', '/v1/auth/signin', { json: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } });
    expect(signin.status, signin.text).toBe(200);
    token = signin.json.access_token;
  });
  afterAll(async () => {
    await app?.close();
    await upstream?.stop();
    await db?.drop();
  });

  const headers = (extra: Record<string, string> = {}) => ({
    authorization: `Bearer ${token}`,
    'x-tenant-id': 'acme',
    'content-type': 'application/json',
    ...extra,
  });

  it.each([
    ['a declared length', (size: number) => ({ 'content-length': String(size) })],
    ['a chunked body', () => ({})],
  ])('the upstream sees the first bytes before the client has sent the last (%s)', async (_label, lengthHeader) => {
    const body = jsonOfSize(MIB - 1024);
    const first = body.subarray(0, 64 * 1024);
    const rest = body.subarray(64 * 1024);
    const before = upstream.started();
    const result = await sendInTwoParts(`${app.url}/v1/query/orders`, headers(lengthHeader(body.length)), first, rest, async () => {
      // the rest is held back until the upstream has the first part: a buffering proxy never gets there
      await waitFor(() => upstream.started() > before && upstream.current()!.bytes >= first.length, 10_000);
    });
    expect(result.status, result.body).toBe(200);
    expect(JSON.parse(result.body)).toEqual({ bytes: body.length });
    const received = upstream.requests.at(-1)!;
    expect(received.firstByteAt).toBeLessThanOrEqual(result.lastByteAt);
    expect(received.bytes).toBe(body.length);
    expect(received.sha256).toBe(createHash('sha256').update(body).digest('hex'));
  });

  it('reads a small body with a declared length whole before the upstream call, and sends it in one piece with its length', async () => {
    const body = jsonOfSize(8 * 1024);
    const before = upstream.started();
    const result = await sendInTwoParts(
      `${app.url}/v1/query/orders`,
      headers({ 'content-length': String(body.length) }),
      body.subarray(0, 1024),
      body.subarray(1024),
      async () => {
        await new Promise((resolve) => setTimeout(resolve, 300));
        // nothing went upstream while the rest was missing
        expect(upstream.started()).toBe(before);
      },
    );
    expect(result.status, result.body).toBe(200);
    const received = upstream.requests.at(-1)!;
    expect(received.contentLength).toBe(String(body.length));
    expect(received.sha256).toBe(createHash('sha256').update(body).digest('hex'));
  });

  it('refuses a declared length above 1 MiB with 413 before any upstream contact', async () => {
    const before = upstream.requests.length;
    const body = jsonOfSize(MIB + 10);
    const response = await fetch(`${app.url}/v1/query/orders`, { method: 'POST', headers: headers(), body });
    expect(response.status).toBe(413);
    expect(((await response.json()) as { code: string }).code).toBe('payload_too_large');
    expect(upstream.requests.length).toBe(before);
  });

  it('refuses a chunked body with 413 at the byte that crosses 1 MiB', async () => {
    const body = jsonOfSize(MIB + 64 * 1024);
    const result = await sendInTwoParts(
      `${app.url}/v1/query/orders`,
      headers(),
      body.subarray(0, 512 * 1024),
      body.subarray(512 * 1024),
      () => Promise.resolve(),
    ).catch((error: unknown) => ({ status: 0, body: String(error), lastByteAt: 0 }));
    expect(result.status, result.body).toBe(413);
    expect(JSON.parse(result.body).code).toBe('payload_too_large');
  });
});
