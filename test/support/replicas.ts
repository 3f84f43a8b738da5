import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Kvm, type KV } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
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

/** A routing document written to a fresh temp file, for ROUTING_FILE. */
export function writeRoutingFile(name: string, document: object): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), `gh-${name}-`)), 'routing.json');
  fs.writeFileSync(file, JSON.stringify(document));
  return file;
}

export interface RoutedReplicaPair extends ReplicaPair {
  /** the pair's own JetStream KV bucket, seeded by the replicas from `routing` */
  bucket: string;
  nc: NatsConnection;
  kv: KV;
}

/**
 * spawnReplicaPair routed from a JetStream KV bucket of their own (empty at start, so the
 * replicas seed it from `routing` through ROUTING_FILE), gRPC off and LOG_LEVEL warn unless `env`
 * says otherwise; `kv` reads and writes the bucket. stop() also destroys the bucket.
 */
export async function spawnRoutedReplicaPair(
  name: string,
  routing: object,
  env: Record<string, string | undefined>,
): Promise<RoutedReplicaPair> {
  const bucket = `gh_${name.replace(/\W/g, '_')}_${randomBytes(4).toString('hex')}`;
  const pair = await spawnReplicaPair(name, {
    ROUTING_FILE: writeRoutingFile(name, routing),
    ROUTING_KV_BUCKET: bucket,
    GRPC_PORT: '0',
    LOG_LEVEL: 'warn',
    ...env,
  });
  let nc: NatsConnection | undefined;
  try {
    nc = await connect({ servers: NATS_URL });
    const kv = await new Kvm(nc).open(bucket);
    const connection = nc;
    return {
      ...pair,
      bucket,
      nc: connection,
      kv,
      async stop() {
        await Promise.all([pair.a.stop(), pair.b.stop()]);
        await kv.destroy().catch(() => undefined);
        await connection.close();
        await pair.db.drop();
      },
    };
  } catch (error) {
    await nc?.close();
    await pair.stop();
    throw error;
  }
}
