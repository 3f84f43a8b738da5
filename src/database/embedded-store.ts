import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

export interface EmbeddedStore {
  /** postgres:// URL of the loopback socket in front of PGlite, for `pg` / `@prisma/adapter-pg`. */
  url: string;
  /** Closes the socket server, then PGlite (flushing its data directory). Idempotent. */
  stop(): Promise<void>;
}

/**
 * Connections the socket server accepts at once (its default is 1, and Node drops the
 * connections past the limit rather than queueing them). PGlite is ONE PostgreSQL backend: the
 * server runs the connections' protocol messages on it one at a time, and a transaction holds
 * it until it ends. A pg pool with several connections works (pg sends Parse..Sync in one write
 * and each message runs synchronously, so sequences do not interleave) but gains nothing, and
 * session state (SET, advisory locks, temp tables, LISTEN) is shared by all connections; app
 * pools should use `max: 1`. The migrator needs two (its lock client and the engine's pool).
 */
const MAX_CONNECTIONS = 16;

/**
 * Starts PostgreSQL-in-WebAssembly (PGlite) with its data under `<dataDir>/pg`, served on an
 * ephemeral loopback port, so the production pg driver adapter runs unchanged without an
 * external database. Data persists across stop/start.
 */
export async function startEmbeddedStore(dataDir: string): Promise<EmbeddedStore> {
  const pgDir = path.resolve(dataDir, 'pg');
  await mkdir(pgDir, { recursive: true });
  const db = await PGlite.create({ dataDir: pgDir });
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: MAX_CONNECTIONS });
  try {
    await server.start();
  } catch (error) {
    await db.close().catch(() => undefined);
    throw new Error(`embedded database: cannot listen on 127.0.0.1: ${(error as Error).message}`);
  }
  // With port 0 the server reads the bound port back into its connection string ("host:port").
  const port = Number(/:(\d+)$/.exec(server.getServerConn())?.[1]);
  if (!Number.isInteger(port) || port <= 0) {
    await server.stop().catch(() => undefined);
    await db.close().catch(() => undefined);
    throw new Error(`embedded database: could not read the listening port (${server.getServerConn()})`);
  }

  let stopping: Promise<void> | undefined;
  return {
    url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
    stop() {
      stopping ??= (async () => {
        await server.stop();
        if (!db.closed) await db.close();
      })();
      return stopping;
    },
  };
}
