import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { servicesAvailable } from '../support/services';

const CLI = path.resolve(__dirname, '..', '..', 'dist', 'cli.js');
const available = servicesAvailable({ postgres: true });

function cli(args: string[], env: Record<string, string> = {}, input?: string): { status: number | null; stdout: string; stderr: string } {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-cli-'));
  const result = spawnSync(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH, NODE_ENV: 'test', DATA_DIR: dataDir, ...env },
    encoding: 'utf8',
    timeout: 60_000,
    input: input ?? '',
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

describe.skipIf(!available)('operator CLI commands on a migrated database', () => {
  const PASSWORD = 'correct-Horse-battery-9-staple';
  let db: TestDatabase;
  let env: Record<string, string>;
  beforeAll(async () => {
    db = await createTestDatabase();
    // rotate-keys right after start: no wait for the next key's publication (CONTRACT §6)
    env = { DATABASE_URL: db.url, JWKS_MAX_AGE: '0' };
    const migrated = cli(['migrate'], env);
    expect(migrated.status, migrated.stderr).toBe(0);
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('create-admin creates a verified user holding platform_admin, then promotes an existing one without touching its password', async () => {
    const first = cli(['create-admin', 'Ops@Example.com'], env, `${PASSWORD}\n`);
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^create-admin: created user \S+ <ops@example\.com>; granted platform_admin; password set\n$/);
    const rows = await db.query(
      `SELECT u.email, u.email_verified_at IS NOT NULL AS verified, a.role_id, a.tenant_id
         FROM users u JOIN assignments a ON a.principal_id = u.id WHERE u.email = 'ops@example.com'`,
    );
    expect(rows.rows).toEqual([{ email: 'ops@example.com', verified: true, role_id: 'platform_admin', tenant_id: null }]);
    const audit = await db.query(`SELECT action, changes FROM audit_records WHERE action = 'iam.admin.create'`);
    expect(audit.rows).toHaveLength(1);
    expect(JSON.stringify(audit.rows[0].changes)).not.toContain(PASSWORD);
    // ids and flags, never an email (CONTRACT §6, wave 2)
    expect(JSON.stringify(audit.rows[0].changes)).not.toContain('ops@example.com');

    const again = cli(['create-admin', 'ops@example.com'], env, 'another-Horse-battery-7-staple');
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toContain('existing user');
    expect(again.stdout).toContain('already platform_admin');
    expect(again.stdout).toContain('password unchanged');
  });

  it('create-admin refuses a weak password (exit 1, nothing created) and a missing one (exit 64)', async () => {
    const weak = cli(['create-admin', 'weak@example.com'], env, 'password\n');
    expect(weak.status).toBe(1);
    expect(weak.stderr).toMatch(/^create-admin: The password /m);
    const none = cli(['create-admin', 'none@example.com'], env, '');
    expect(none.status).toBe(64);
    expect(none.stderr).toContain('no password on stdin');
    const users = await db.query(`SELECT count(*)::int AS n FROM users WHERE email IN ('weak@example.com', 'none@example.com')`);
    expect(users.rows[0].n).toBe(0);
  });

  it('rotate-keys makes the next key active and retires the old one, audited', async () => {
    const before = await db.query(`SELECT kid, status FROM signing_keys ORDER BY created_at`);
    const result = cli(['rotate-keys'], env);
    expect(result.status, result.stderr).toBe(0);
    const [, active, retired] = /^rotate-keys: active kid (\S+); retired kid (\S+) /.exec(result.stdout) ?? [];
    expect(active).toBeTruthy();
    const after = await db.query(`SELECT kid, status FROM signing_keys`);
    const status = Object.fromEntries(after.rows.map((row) => [row.kid, row.status]));
    expect(status[active!]).toBe('active');
    expect(status[retired!]).toBe('retired');
    expect(before.rows.some((row) => row.kid === retired && row.status === 'active')).toBe(true);
    const audit = await db.query(`SELECT target_id FROM audit_records WHERE action = 'platform.keys.rotate'`);
    expect(audit.rows.map((row) => row.target_id)).toContain(active);
  });

  it('prune deletes what is past retention and says how many rows, never audit records', async () => {
    await db.query(
      `INSERT INTO rate_limit_counters (key, window_start, count) VALUES ('cli-old', now() - interval '30 days', 3), ('cli-new', now(), 1)`,
    );
    const auditBefore = await db.query(`SELECT count(*)::int AS n FROM audit_records`);
    const result = cli(['prune'], env);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^prune: deleted \d+ rows older than RETENTION_PERIOD=\d+s: .*rate_limit_counters=1/);
    const left = await db.query(`SELECT key FROM rate_limit_counters WHERE key LIKE 'cli-%'`);
    expect(left.rows.map((row) => row.key)).toEqual(['cli-new']);
    const auditAfter = await db.query(`SELECT count(*)::int AS n FROM audit_records`);
    expect(auditAfter.rows[0].n).toBe(auditBefore.rows[0].n);
  });

  it('audit-verify reports an intact chain, and exits 1 naming the first record that was tampered with', async () => {
    const ok = cli(['audit-verify'], env);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^audit-verify: ok, [1-9]\d* records checked\n$/);
    // the table refuses UPDATE through its trigger; a superuser with the trigger off stands for an attacker
    await db.query(`ALTER TABLE audit_records DISABLE TRIGGER audit_records_no_update_delete`);
    await db.query(`UPDATE audit_records SET action = 'iam.tampered' WHERE seq = 1`);
    await db.query(`ALTER TABLE audit_records ENABLE TRIGGER audit_records_no_update_delete`);
    const broken = cli(['audit-verify'], env);
    expect(broken.status).toBe(1);
    expect(broken.stdout).toContain('audit-verify: BROKEN at seq 1');
  });

  it('the database commands refuse to run without DATABASE_URL', () => {
    for (const command of ['rotate-keys', 'audit-verify', 'prune']) {
      const result = cli([command]);
      expect(result.status, command).toBe(1);
      expect(result.stderr, command).toContain('DATABASE_URL is not set');
    }
  });
});
