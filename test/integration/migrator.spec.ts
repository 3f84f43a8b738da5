import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedStore } from '../../src/database/embedded-store';
import { applyMigrations, diffSchemas } from '../../src/database/migrator';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { servicesAvailable } from '../support/services';

const MIGRATIONS: Record<string, string> = {
  '20240101000000_init': 'CREATE TABLE "gadgets" ("id" SERIAL PRIMARY KEY, "name" TEXT NOT NULL);\n',
  '20240102000000_parts':
    'CREATE TABLE "parts" ("id" SERIAL PRIMARY KEY, "gadget_id" INTEGER NOT NULL REFERENCES "gadgets"("id"));\n' +
    'CREATE INDEX "parts_gadget_id_idx" ON "parts"("gadget_id");\n',
};
const NAMES = Object.keys(MIGRATIONS).sort();

let tmp: string;
let migrationsDir: string;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-migrator-'));
  migrationsDir = path.join(tmp, 'migrations');
  for (const [name, sql] of Object.entries(MIGRATIONS)) {
    await mkdir(path.join(migrationsDir, name), { recursive: true });
    await writeFile(path.join(migrationsDir, name, 'migration.sql'), sql);
  }
  await writeFile(path.join(migrationsDir, 'migration_lock.toml'), 'provider = "postgresql"\n');
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function tableNames(query: (sql: string) => Promise<pg.QueryResult>): Promise<string[]> {
  const result = await query(`SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`);
  return result.rows.map((row: { tablename: string }) => row.tablename);
}

describe('applyMigrations on PostgreSQL', () => {
  const databases: TestDatabase[] = [];
  // Unreachable PostgreSQL: skip with a printed reason, or fail when REQUIRE_SERVICES=1 (CI).
  const postgresUp = servicesAvailable({ postgres: true });
  afterAll(async () => {
    await Promise.all(databases.map((db) => db.drop()));
  });

  it('applies pending migrations once and records them in _prisma_migrations', async (ctx) => {
    if (!postgresUp) return ctx.skip('PostgreSQL unreachable');
    const db = await createTestDatabase('gh_migrator');
    databases.push(db);
    const logs: string[] = [];

    const applied = await applyMigrations(db.url, migrationsDir, (msg) => logs.push(msg));
    expect(applied).toEqual(NAMES);
    expect(await tableNames((sql) => db.query(sql))).toEqual(['_prisma_migrations', 'gadgets', 'parts']);
    const rows = await db.query<{ migration_name: string; done: boolean }>(
      'SELECT migration_name, finished_at IS NOT NULL AND rolled_back_at IS NULL AS done FROM _prisma_migrations ORDER BY migration_name',
    );
    expect(rows.rows).toEqual(NAMES.map((name) => ({ migration_name: name, done: true })));
    expect(logs.some((line) => line.includes('Applying `20240101000000_init`'))).toBe(true);

    // Up to date: nothing more to do.
    expect(await applyMigrations(db.url, migrationsDir, () => undefined)).toEqual([]);
  });

  it('applies each migration exactly once when two callers race', async (ctx) => {
    if (!postgresUp) return ctx.skip('PostgreSQL unreachable');
    const db = await createTestDatabase('gh_migrator');
    databases.push(db);

    const results = await Promise.all([
      applyMigrations(db.url, migrationsDir, () => undefined),
      applyMigrations(db.url, migrationsDir, () => undefined),
    ]);
    expect(results.flat().sort()).toEqual(NAMES);
    const counts = await db.query<{ migration_name: string; n: number }>(
      'SELECT migration_name, count(*)::int AS n FROM _prisma_migrations GROUP BY migration_name ORDER BY migration_name',
    );
    expect(counts.rows).toEqual(NAMES.map((name) => ({ migration_name: name, n: 1 })));
  });

  it('fails with a clear message when a migration is broken', async (ctx) => {
    if (!postgresUp) return ctx.skip('PostgreSQL unreachable');
    const db = await createTestDatabase('gh_migrator');
    databases.push(db);
    const broken = path.join(tmp, 'broken');
    await mkdir(path.join(broken, '20240101000000_oops'), { recursive: true });
    await writeFile(path.join(broken, '20240101000000_oops', 'migration.sql'), 'CREATE TABLE oops (;\n');

    const error = await applyMigrations(db.url, broken, () => undefined).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/^migrations failed: .*syntax error/s);
    expect((error as Error).message).not.toMatch(/\.rs:\d+/);
  });
});

describe('diffSchemas (no database)', () => {
  it('produces the SQL from empty, and nothing for an unchanged schema', async () => {
    const schema = path.join(tmp, 'schema.prisma');
    await writeFile(
      schema,
      'datasource db {\n  provider = "postgresql"\n}\n\nmodel Gadget {\n  id   Int    @id\n  name String\n\n  @@map("gadgets")\n}\n',
    );
    const sql = await diffSchemas(null, schema);
    expect(sql).toContain('CREATE TABLE "gadgets"');
    expect(await diffSchemas(schema, schema)).toBe('');
  });
});

describe('embedded store (PGlite)', () => {
  it('serves pg on a loopback port and keeps data across restarts', async () => {
    const dataDir = path.join(tmp, 'data');

    const first = await startEmbeddedStore(dataDir);
    expect(first.url).toMatch(/^postgresql:\/\/postgres@127\.0\.0\.1:\d+\/postgres$/);
    try {
      expect(await applyMigrations(first.url, migrationsDir, () => undefined)).toEqual(NAMES);
      const client = new pg.Client({ connectionString: first.url });
      await client.connect();
      await client.query('INSERT INTO gadgets (name) VALUES ($1)', ['sprocket']);
      await client.end();
    } finally {
      await first.stop();
    }

    const second = await startEmbeddedStore(dataDir);
    try {
      const client = new pg.Client({ connectionString: second.url });
      await client.connect();
      const rows = await client.query<{ name: string }>('SELECT name FROM gadgets');
      await client.end();
      expect(rows.rows).toEqual([{ name: 'sprocket' }]);
      expect(await applyMigrations(second.url, migrationsDir, () => undefined)).toEqual([]);
    } finally {
      await second.stop();
    }
  });
});
