import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { bootApp, type TestApp } from '../support/app';
import { signinAdmin } from '../support/auth-flows';
import { http } from '../support/http';
import { servicesAvailable } from '../support/services';

const available = servicesAvailable({ postgres: true });
const MASTER_KEY = Buffer.alloc(32, 11).toString('base64');
const ADMIN_EMAIL = 'roles-root@example.com';
const ADMIN_PASSWORD = 'roles bootstrap admin password';

/** `url` with another user (roles made by test/support/global-setup.ts). */
function asRole(url: string, role: string): string {
  const parsed = new URL(url);
  parsed.username = role;
  parsed.password = `${role}-test-password`;
  return parsed.toString();
}

// Issue 11: migrate as the owner role, serve as a role that may only INSERT/SELECT on audit_records.
describe.skipIf(!available)('database roles: migrations as the owner, serving as an app role', () => {
  let db: TestDatabase;
  let app: TestApp;
  let asApp: pg.Client;

  beforeAll(async () => {
    db = await createTestDatabase('gh_roles');
    // the owner role owns the database, hence (PostgreSQL 15+) its public schema
    await db.query(`ALTER DATABASE ${db.name} OWNER TO gatehouse_owner`);
    await db.query('ALTER SCHEMA public OWNER TO gatehouse_owner');
    app = await bootApp({
      DATABASE_URL: asRole(db.url, 'gatehouse_app'),
      DATABASE_MIGRATION_URL: asRole(db.url, 'gatehouse_owner'),
      MASTER_KEY,
      BOOTSTRAP_ADMIN_EMAIL: ADMIN_EMAIL,
      BOOTSTRAP_ADMIN_PASSWORD: ADMIN_PASSWORD,
    });
    asApp = new pg.Client({ connectionString: asRole(db.url, 'gatehouse_app') });
    await asApp.connect();
  });
  afterAll(async () => {
    await asApp?.end();
    await app?.close();
    await db?.drop();
  });

  it('migrated as gatehouse_owner: it owns the tables, the app role owns none', async () => {
    const owners = await db.query<{ owner: string; n: string }>(
      `SELECT tableowner AS owner, count(*)::text AS n FROM pg_tables WHERE schemaname = 'public' GROUP BY tableowner`,
    );
    expect(owners.rows.map((row) => row.owner)).toEqual(['gatehouse_owner']);
    expect(app.logs()).toContain('serving role gatehouse_app granted');
  });

  it('serves sign-in and an audited admin mutation as gatehouse_app', async () => {
    const token: string = await signinAdmin(app.url, ADMIN_EMAIL, ADMIN_PASSWORD);
    const created = await http(app.url, 'POST', '/admin/tenants', { token, json: { id: 'roles-acme', name: 'Roles Acme' } });
    expect(created.status, created.text).toBe(201);
    const audited = await db.query(`SELECT action FROM audit_records WHERE target_id = 'roles-acme'`);
    expect(audited.rowCount).toBeGreaterThan(0);
    const verify = await http(app.url, 'GET', '/admin/audit/verify', { token });
    expect(verify.status, verify.text).toBe(200);
  });

  it.each([
    ['UPDATE', `UPDATE audit_records SET action = 'forged'`],
    ['DELETE', 'DELETE FROM audit_records'],
    ['DISABLE TRIGGER', 'ALTER TABLE audit_records DISABLE TRIGGER ALL'],
    ['TRUNCATE', 'TRUNCATE audit_records'],
    ['DROP', 'DROP TABLE audit_records'],
  ])('refuses %s on audit_records to the app role (permission error)', async (_what, sql) => {
    const refused = await asApp.query(sql).then(
      () => null,
      (error: { code?: string }) => error,
    );
    expect(refused?.code).toBe('42501'); // insufficient_privilege
    const count = await db.query<{ n: string }>('SELECT count(*)::text AS n FROM audit_records');
    expect(Number(count.rows[0]?.n)).toBeGreaterThan(0);
  });

  it('still lets the app role INSERT-through-append and SELECT the audit table', async () => {
    const rows = await asApp.query('SELECT seq FROM audit_records ORDER BY seq LIMIT 1');
    expect(rows.rowCount).toBe(1);
  });
});
