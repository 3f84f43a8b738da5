import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort, waitFor } from '../../support/process';

const run = promisify(execFile);
const BIN = '/usr/lib/postgresql/15/bin';

export interface PrivatePostgres {
  port: number;
  /** superuser URL of database `gatehouse` */
  url: string;
  /** SIGKILL-free restart: fast shutdown, then start again on the same port */
  restart(): Promise<void>;
  /** fast shutdown (clients see 57P01 and then refused connections) */
  stop(): Promise<void>;
  start(): Promise<void>;
  query<T extends pg.QueryResultRow = pg.QueryResultRow>(text: string, params?: unknown[]): Promise<pg.QueryResult<T>>;
  destroy(): Promise<void>;
}

/** Whether this machine can run a private PostgreSQL (the binaries, and root to switch to `postgres`). */
export function privatePostgresAvailable(): boolean {
  return fs.existsSync(path.join(BIN, 'initdb')) && typeof process.getuid === 'function' && process.getuid() === 0;
}

function asPostgres(command: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run('runuser', ['-u', 'postgres', '--', path.join(BIN, command), ...args], { timeout: 60_000 });
}

async function postgresUser(): Promise<{ uid: number; gid: number }> {
  const { stdout: uid } = await run('id', ['-u', 'postgres']);
  const { stdout: gid } = await run('id', ['-g', 'postgres']);
  return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
}

/**
 * A PostgreSQL 15 cluster of its own (initdb in a temp dir owned by `postgres`, own port), so a
 * test may stop, restart or slow it without disturbing the shared server other suites use.
 * initdb refuses to run as root, hence `runuser -u postgres`.
 */
export async function startPrivatePostgres(options: { serverArgs?: string[] } = {}): Promise<PrivatePostgres> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-fault-pg-'));
  fs.chmodSync(dir, 0o755);
  const dataDir = path.join(dir, 'data');
  fs.mkdirSync(dataDir);
  await run('chown', ['-R', 'postgres:postgres', dir]);
  const owner = await postgresUser();
  await asPostgres('initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  const port = await freePort();
  let server: ChildProcess | undefined;
  const logFile = path.join(dir, 'postgres.log');

  const start = async () => {
    const log = fs.openSync(logFile, 'a');
    // fsync off: a test cluster need not survive a power cut, and the disk is shared
    // started as the postgres user directly (not through runuser) so signals reach it
    server = spawn(
      path.join(BIN, 'postgres'),
      [
        '-D',
        dataDir,
        '-p',
        String(port),
        '-h',
        '127.0.0.1',
        '-k',
        dir,
        '-c',
        'fsync=off',
        '-c',
        'max_connections=100',
        ...(options.serverArgs ?? []),
      ],
      { stdio: ['ignore', log, log], uid: owner.uid, gid: owner.gid },
    );
    fs.closeSync(log);
    await waitFor(
      async () => {
        const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
        client.on('error', () => undefined);
        try {
          await client.connect();
          await client.end();
          return true;
        } catch {
          return false;
        }
      },
      30_000,
      100,
    );
  };
  const stop = async () => {
    const child = server;
    server = undefined;
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    // SIGINT = fast shutdown: open sessions get 57P01 at once
    child.kill('SIGINT');
    await exited;
  };

  await start();
  const admin = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
  await admin.connect();
  await admin.query('CREATE DATABASE gatehouse');
  await admin.end();
  const url = `postgresql://postgres@127.0.0.1:${port}/gatehouse`;

  return {
    port,
    url,
    start,
    stop,
    async restart() {
      await stop();
      await start();
    },
    async query(text, params) {
      const client = new pg.Client({ connectionString: url });
      client.on('error', () => undefined);
      await client.connect();
      try {
        return await client.query(text, params);
      } finally {
        await client.end();
      }
    },
    async destroy() {
      await stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
