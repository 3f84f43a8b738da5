import { createTestDatabase, type TestDatabase } from './database';
import { spawnGatehouse, type GatehouseProcess } from './process';
import { NATS_URL } from './services';

export interface ReplicaPair {
  db: TestDatabase;
  a: GatehouseProcess;
  b: GatehouseProcess;
  /** stops both processes, then drops their database */
  stop(): Promise<void>;
}

/**
 * A fresh test database and two Gatehouse processes (dist/main.js, named `<name>-a` and
 * `<name>-b`) on it and the shared NATS, with one PUBLIC_URL so a token issued by one is valid
 * at the other, and AUTH_IP_LIMIT out of the way; `env` (MASTER_KEY at least) adds to or
 * overrides that. Whatever started is stopped again when the other fails to start.
 */
export async function spawnReplicaPair(name: string, env: Record<string, string | undefined>): Promise<ReplicaPair> {
  const db = await createTestDatabase();
  const replicaEnv = { DATABASE_URL: db.url, NATS_URL, PUBLIC_URL: 'http://gatehouse.test', AUTH_IP_LIMIT: '100000', ...env };
  const started = await Promise.allSettled([spawnGatehouse(replicaEnv, `${name}-a`), spawnGatehouse(replicaEnv, `${name}-b`)]);
  const [a, b] = started.map((result) => (result.status === 'fulfilled' ? result.value : undefined));
  if (a === undefined || b === undefined) {
    await Promise.all([a?.stop(), b?.stop()]);
    await db.drop();
    throw (started.find((result) => result.status === 'rejected') as PromiseRejectedResult).reason;
  }
  return {
    db,
    a,
    b,
    async stop() {
      await Promise.all([a.stop(), b.stop()]);
      await db.drop();
    },
  };
}
