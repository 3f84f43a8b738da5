import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_EMAIL, ADMIN_PASSWORD, createTenant, signinAdmin } from '../support/admin-fixtures';
import { bootApp, type TestApp } from '../support/app';
import { signupUser } from '../support/auth-flows';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { http } from '../support/http';
import { waitFor } from '../support/process';
import { NATS_URL, servicesAvailable } from '../support/services';

const ROOT = path.resolve(__dirname, '..', '..');
const SCRIPT = path.join(ROOT, 'scripts', 'audit-stream.js');
const MASTER_KEY = Buffer.alloc(32, 51).toString('base64');
const hasTools = spawnSync('pg_dump', ['--version']).status === 0 && spawnSync('pg_restore', ['--version']).status === 0;
const available = servicesAvailable({ postgres: true, nats: true }) && (hasTools || process.env.REQUIRE_SERVICES === '1');
if (!hasTools) console.warn('backup/restore: pg_dump/pg_restore not installed (Debian postgresql-client); the suite is skipped');

/** Runs scripts/audit-stream.js; resolves with its exit status and output. */
function auditStream(command: 'export' | 'compare', file: string, env: Record<string, string>): { status: number | null; output: string } {
  const result = spawnSync(process.execPath, [SCRIPT, command, file], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe.skipIf(!available)('backup and restore (swarm/README.md "Back up and restore")', () => {
  let source: TestDatabase;
  let restored: TestDatabase;
  let original: TestApp | undefined;
  let revived: TestApp | undefined;
  let dir: string;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-backup-'));
    [source, restored] = await Promise.all([createTestDatabase(), createTestDatabase('gh_restore')]);
  });
  afterAll(async () => {
    await Promise.all([original?.close(), revived?.close()]);
    await Promise.all([source?.drop(), restored?.drop()]);
  });

  it('restores a pg_dump into a fresh database that serves sign-ins, verifies its chain and matches the audit stream backup', async () => {
    const env = {
      NATS_URL,
      MASTER_KEY,
      BOOTSTRAP_ADMIN_EMAIL: ADMIN_EMAIL,
      BOOTSTRAP_ADMIN_PASSWORD: ADMIN_PASSWORD,
      AUTH_IP_LIMIT: '100000',
    };
    original = await bootApp({ ...env, DATABASE_URL: source.url });
    const user = await signupUser(original.url);
    await createTenant(original.url, await signinAdmin(original.url), 'backup-co');
    const streamFile = path.join(dir, 'audit-stream.ndjson');
    // the audit publisher puts every record on the stream shortly after its commit
    await waitFor(
      () =>
        auditStream('export', streamFile, { NATS_URL }).status === 0 &&
        auditStream('compare', streamFile, { DATABASE_URL: source.url }).status === 0,
      15_000,
      500,
    );
    await original.close();
    original = undefined;

    const dump = path.join(dir, 'gatehouse.dump');
    execFileSync('pg_dump', ['--format=custom', '--no-owner', `--file=${dump}`, source.url]);
    execFileSync('pg_restore', ['--no-owner', '--exit-on-error', `--dbname=${restored.url}`, dump]);

    // the restored rows are exactly what the stream backup holds for them
    const compared = auditStream('compare', streamFile, { DATABASE_URL: restored.url });
    expect(compared.status, compared.output).toBe(0);
    // and a tampered backup is noticed
    const tamperedFile = path.join(dir, 'tampered.ndjson');
    const lines = fs.readFileSync(streamFile, 'utf8').trim().split('\n');
    const firstOwn = (await restored.query<{ id: string }>(`SELECT id FROM audit_records ORDER BY seq LIMIT 1`)).rows[0]!.id;
    fs.writeFileSync(tamperedFile, lines.filter((line) => !line.includes(firstOwn)).join('\n') + '\n');
    const tampered = auditStream('compare', tamperedFile, { DATABASE_URL: restored.url });
    expect(tampered.status).toBe(1);
    expect(tampered.output).toMatch(/not in the stream backup/);

    revived = await bootApp({ ...env, DATABASE_URL: restored.url });
    const signin = await http(revived.url, 'POST', '/v1/auth/signin', { json: { email: user.email, password: user.password } });
    expect(signin.status, signin.text).toBe(200);
    expect((await http(revived.url, 'GET', '/v1/auth/me', { token: signin.json.access_token })).status).toBe(200);
    const verify = await http(revived.url, 'GET', '/admin/audit/verify', { token: await signinAdmin(revived.url) });
    expect(verify.status, verify.text).toBe(200);
    expect(verify.json.ok).toBe(true);
    const rows = await restored.query<{ n: string }>(`SELECT count(*) AS n FROM audit_records`);
    expect(Number(rows.rows[0]!.n)).toBeGreaterThanOrEqual(3);
  });
});
