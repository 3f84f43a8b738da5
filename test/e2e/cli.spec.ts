import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { servicesAvailable } from '../support/services';

const CLI = path.resolve(__dirname, '..', '..', 'dist', 'cli.js');
const available = servicesAvailable({ postgres: true });

function cli(args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-cli-'));
  const result = spawnSync(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH, NODE_ENV: 'test', DATA_DIR: dataDir, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('operator CLI', () => {
  it('check-config says the configuration is fine, or names the bad variable and exits 78', () => {
    const ok = cli(['check-config']);
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(/^config ok: NODE_ENV=test /);
    const bad = cli(['check-config'], { TRUST_PROXY: 'banana' });
    expect(bad.status).toBe(78);
    expect(bad.stderr).toMatch(/^config: TRUST_PROXY: /);
  });

  it('refuses an unknown command with the usage and a non-zero exit', () => {
    const result = cli(['frobnicate']);
    expect(result.status).toBe(64);
    expect(result.stderr).toContain('unknown command: frobnicate');
    expect(result.stderr).toContain('check-config');
  });
});

describe.skipIf(!available)('operator CLI on PostgreSQL', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('migrate applies the migrations once, then has nothing to do', async () => {
    const first = cli(['migrate'], { DATABASE_URL: db.url });
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/migrate: applied \d+: /);
    const tables = await db.query(`SELECT to_regclass('public.sessions') AS t`);
    expect(tables.rows[0].t).toBe('sessions');
    const second = cli(['migrate'], { DATABASE_URL: db.url });
    expect(second.status).toBe(0);
    expect(second.stdout).toContain('migrate: nothing to apply');
  });

  it('migrate exits non-zero when the database cannot be reached', () => {
    const result = cli(['migrate'], { DATABASE_URL: 'postgresql://postgres@127.0.0.1:1/nowhere' });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/cannot connect/);
  });
});
