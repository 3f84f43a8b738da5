import net from 'node:net';
import pg from 'pg';
import type { TestProject } from 'vitest/node';

const PG_ADMIN_URL = process.env.TEST_PG_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const NATS_URL = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222';

async function reachable(url: string, defaultPort: number): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port || defaultPort) });
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}

declare module 'vitest' {
  export interface ProvidedContext {
    postgres: boolean;
    nats: boolean;
  }
}

/** Issue 11: the owner and serving roles of test/e2e/database-roles.spec.ts (see test/support/services.ts). */
const TEST_ROLES = ['gatehouse_owner', 'gatehouse_app'];

/**
 * Roles are cluster-wide, so they are created here once per run, idempotently: a role another
 * run (or a parallel one) created already is left as it is.
 */
async function createTestRoles(): Promise<void> {
  const client = new pg.Client({ connectionString: PG_ADMIN_URL });
  await client.connect();
  try {
    for (const role of TEST_ROLES) {
      await client.query(`CREATE ROLE ${role} LOGIN PASSWORD '${role}-test-password'`).catch((error: { code?: string }) => {
        // 42710 duplicate_object; 23505 when a parallel run created it at the same moment
        if (error.code !== '42710' && error.code !== '23505') throw error;
      });
    }
  } finally {
    await client.end();
  }
}

/**
 * Checks once which real servers are up and hands the answer to every suite (`inject`), so
 * suites can skip synchronously. With REQUIRE_SERVICES=1 a missing server fails the run.
 */
export default async function setup(project: TestProject): Promise<void> {
  const postgres = await reachable(PG_ADMIN_URL, 5432);
  const nats = await reachable(NATS_URL, 4222);
  const missing = [!postgres && `PostgreSQL at ${PG_ADMIN_URL}`, !nats && `NATS at ${NATS_URL}`].filter(Boolean);
  if (missing.length > 0) {
    if (process.env.REQUIRE_SERVICES === '1') throw new Error(`unreachable with REQUIRE_SERVICES=1: ${missing.join(', ')}`);
    console.warn(`suites needing ${missing.join(' and ')} are skipped: unreachable`);
  }
  if (postgres) await createTestRoles();
  project.provide('postgres', postgres);
  project.provide('nats', nats);
}
