import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { PG_ADMIN_URL } from './services';

export interface TestDatabase {
  name: string;
  url: string;
  query<T extends pg.QueryResultRow = pg.QueryResultRow>(text: string, params?: unknown[]): Promise<pg.QueryResult<T>>;
  drop(): Promise<void>;
}

/** A fresh PostgreSQL database for one test file; `drop()` removes it (and its connections). */
export async function createTestDatabase(prefix = 'gh_test'): Promise<TestDatabase> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max: 4 });
  // DROP ... WITH (FORCE) terminates idle connections; that is expected, not a test failure
  pool.on('error', () => undefined);
  return {
    name,
    url: url.toString(),
    query: (text, params) => pool.query(text, params),
    async drop() {
      await pool.end();
      const client = new pg.Client({ connectionString: PG_ADMIN_URL });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}
