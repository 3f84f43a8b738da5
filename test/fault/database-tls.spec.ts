import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config';
import { http, STRONG_PASSWORD, uniqueEmail } from '../support/http';
import { spawnGatehouse, waitFor, type GatehouseProcess } from '../support/process';
import { makeTestCertificates, type TestCertificates } from '../support/test-certificates';
import { startPrivatePostgres, type PrivatePostgres } from './support/private-postgres';
import { privateServersAvailable } from './support/private-servers';

const available = privateServersAvailable('database-tls', { postgres: true, openssl: true });

/** A CA and a server certificate for 127.0.0.1; the key is the postgres user's, mode 0600, as PostgreSQL demands. */
function makeCertificates(): TestCertificates & { dir: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-pg-tls-'));
  fs.chmodSync(dir, 0o755);
  const certs = makeTestCertificates(dir, 'IP:127.0.0.1');
  execFileSync('chown', ['postgres:postgres', certs.key, certs.cert]);
  fs.chmodSync(certs.key, 0o600);
  return { dir, ...certs };
}

describe.skipIf(!available)('PostgreSQL over TLS with DATABASE_CA_FILE (CONTRACT §13)', () => {
  let certs: ReturnType<typeof makeCertificates>;
  let pg: PrivatePostgres;
  let replica: GatehouseProcess | undefined;

  beforeAll(async () => {
    certs = makeCertificates();
    pg = await startPrivatePostgres({
      serverArgs: ['-c', 'ssl=on', '-c', `ssl_cert_file=${certs.cert}`, '-c', `ssl_key_file=${certs.key}`],
    });
  });
  afterAll(async () => {
    await replica?.stop();
    await pg?.destroy();
  });

  it('serves with every connection encrypted and the server verified against the CA', async () => {
    replica = await spawnGatehouse(
      { DATABASE_URL: pg.url, DATABASE_CA_FILE: certs.ca, MASTER_KEY: Buffer.alloc(32, 55).toString('base64') },
      'pg-tls',
      { startTimeoutMs: 180_000 },
    );
    await waitFor(async () => (await http(replica!.url, 'GET', '/ready')).status === 200, 60_000, 200);
    const signup = await http(replica.url, 'POST', '/v1/auth/signup', { json: { email: uniqueEmail('tls'), password: STRONG_PASSWORD } });
    expect(signup.status, signup.text).toBe(201);
    const { rows } = await pg.query(
      `SELECT a.pid, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
        WHERE a.datname = 'gatehouse' AND a.pid <> pg_backend_pid() AND a.client_addr IS NOT NULL AND a.application_name NOT LIKE 'psql%'`,
    );
    // the test's own query connection is plain; Gatehouse's are all TLS
    const gatehouse = rows.filter((row) => row.ssl === true);
    expect(gatehouse.length).toBeGreaterThan(0);
  });

  it('refuses a CA with a sslmode that would not verify it, naming the variable', () => {
    expect(() =>
      loadConfig({ NODE_ENV: 'test', DATA_DIR: certs.dir, DATABASE_URL: `${pg.url}?sslmode=require`, DATABASE_CA_FILE: certs.ca }),
    ).toThrow('config: DATABASE_CA_FILE: DATABASE_URL has sslmode=require; use verify-full (or verify-ca) with a CA');
    expect(loadConfig({ NODE_ENV: 'test', DATA_DIR: certs.dir, DATABASE_URL: pg.url, DATABASE_CA_FILE: certs.ca }).DATABASE_URL).toContain(
      'sslmode=verify-full',
    );
  });
});
