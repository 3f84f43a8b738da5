import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { http } from '../support/http';
import { freePort, spawnGatehouse, waitFor, type GatehouseProcess } from '../support/process';
import { servicesAvailable } from '../support/services';
import { makeTestCertificates, type TestCertificates } from '../support/test-certificates';

const NATS_SERVER = '/usr/sbin/nats-server';
const available = servicesAvailable({ postgres: true }) && fs.existsSync(NATS_SERVER) && fs.existsSync('/usr/bin/openssl');
if (!available && process.env.REQUIRE_SERVICES === '1') {
  throw new Error('nats-credentials: needs PostgreSQL, /usr/sbin/nats-server and openssl');
}
if (!available) console.warn('nats-credentials: skipped: needs PostgreSQL, /usr/sbin/nats-server and openssl');

const MASTER_KEY = Buffer.alloc(32, 44).toString('base64');

async function privateNats(args: string[]): Promise<{ port: number; child: ChildProcess; stop(): Promise<void> }> {
  const port = await freePort();
  const store = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-nats-auth-'));
  const child = spawn(NATS_SERVER, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', store, ...args], { stdio: 'ignore' });
  await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const socket = net.connect({ host: '127.0.0.1', port });
        socket.once('connect', () => {
          socket.destroy();
          resolve(true);
        });
        socket.once('error', () => resolve(false));
      }),
    10_000,
    100,
  );
  return {
    port,
    child,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
      fs.rmSync(store, { recursive: true, force: true });
    },
  };
}

async function natsCheck(replica: GatehouseProcess): Promise<string | undefined> {
  const ready = await http(replica.url, 'GET', '/ready');
  return (ready.json?.checks as Record<string, string> | undefined)?.nats;
}

describe.skipIf(!available)('NATS with credentials and TLS (CONTRACT §13)', () => {
  let db: TestDatabase;
  let dir: string;
  let certs: TestCertificates;
  const cleanup: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-nats-certs-'));
    // the NATS client checks an IP URL's certificate under the name `localhost`
    certs = makeTestCertificates(dir, 'IP:127.0.0.1,DNS:localhost');
  });
  afterAll(async () => {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
    await db?.drop();
  });

  it('connects with NATS_USER + NATS_PASSWORD (given as a *_FILE secret) to a server that requires them', async () => {
    const nats = await privateNats(['--user', 'gatehouse', '--pass', 'nats secret 1']);
    cleanup.push(() => nats.stop());
    const passwordFile = path.join(dir, 'nats-password');
    fs.writeFileSync(passwordFile, 'nats secret 1\n');
    const replica = await spawnGatehouse(
      {
        DATABASE_URL: db.url,
        MASTER_KEY,
        NATS_URL: `nats://127.0.0.1:${nats.port}`,
        NATS_USER: 'gatehouse',
        NATS_PASSWORD_FILE: passwordFile,
        ROUTING_KV_BUCKET: 'gh_nats_auth_user',
      },
      'nats-user',
    );
    cleanup.push(() => replica.stop());
    await waitFor(async () => (await natsCheck(replica)) === 'ok', 20_000, 200);
    expect(replica.logs()).not.toContain('nats secret 1');
  });

  it('speaks TLS to a server whose certificate chains to NATS_TLS_CA_FILE', async () => {
    const nats = await privateNats(['--tls', '--tlscert', certs.cert, '--tlskey', certs.key]);
    cleanup.push(() => nats.stop());
    const good = await spawnGatehouse(
      {
        DATABASE_URL: db.url,
        MASTER_KEY,
        NATS_URL: `tls://127.0.0.1:${nats.port}`,
        NATS_TLS_CA_FILE: certs.ca,
        ROUTING_KV_BUCKET: 'gh_nats_auth_tls',
      },
      'nats-tls',
    );
    cleanup.push(() => good.stop());
    await waitFor(async () => (await natsCheck(good)) === 'ok', 20_000, 200);
  });

  it('refuses half-given credentials and unreadable files at start with one line naming the variable', () => {
    const main = path.join(__dirname, '..', '..', 'dist', 'main.js');
    const run = (env: Record<string, string>) => {
      try {
        execFileSync(process.execPath, [main], {
          env: { PATH: process.env.PATH, NODE_ENV: 'test', DATA_DIR: dir, ...env },
          stdio: 'pipe',
          timeout: 20_000,
        });
        return { status: 0, stderr: '' };
      } catch (error) {
        const failed = error as { status: number; stderr: Buffer };
        return { status: failed.status, stderr: failed.stderr.toString('utf8') };
      }
    };
    const userOnly = run({ NATS_URL: 'nats://127.0.0.1:1', NATS_USER: 'gatehouse' });
    expect(userOnly.status).toBe(78);
    expect(userOnly.stderr.trim()).toBe('config: NATS_PASSWORD: NATS_USER and NATS_PASSWORD go together');
    const missing = run({ NATS_URL: 'nats://127.0.0.1:1', NATS_CREDS_FILE: path.join(dir, 'nope.creds') });
    expect(missing.status).toBe(78);
    expect(missing.stderr.trim()).toMatch(/^config: NATS_CREDS_FILE: cannot read /);
  });
});
