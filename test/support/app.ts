import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import 'reflect-metadata';
import { startGatehouse, type Gatehouse } from '../../src/bootstrap';
import { loadConfig } from '../../src/config/config';
import { createLogger } from '../../src/observability/logger';
import { createTestDatabase, type TestDatabase } from './database';
import { NATS_URL } from './services';

export interface TestApp {
  url: string;
  gatehouse: Gatehouse;
  dataDir: string;
  /** every log line written so far, as text */
  logs(): string;
  close(): Promise<void>;
}

/** Boots Gatehouse in this process on ephemeral ports with the given environment. */
export async function bootApp(env: Record<string, string | undefined> = {}): Promise<TestApp> {
  const dataDir = env.DATA_DIR ?? mkdtempSync(path.join(os.tmpdir(), 'gh-app-'));
  // no drain by default: in-process suites close many apps and nothing balances in front of them
  const config = loadConfig({
    NODE_ENV: 'test',
    PORT: '0',
    GRPC_PORT: '0',
    LOG_LEVEL: 'info',
    SHUTDOWN_DRAIN_MS: '0',
    // CPU on the shared test machine is scarce: a busy moment must not turn into 503s in suites
    // that are not about faults (test/fault sets its own, shorter deadline)
    DB_TIMEOUT_MS: '10000',
    DATA_DIR: dataDir,
    ...env,
  });
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(chunk.toString('utf8'));
      callback();
    },
  });
  const logger = createLogger(config.LOG_LEVEL, sink);
  const gatehouse = await startGatehouse({ ...config }, logger);
  return {
    url: gatehouse.url,
    gatehouse,
    dataDir,
    logs: () => lines.join(''),
    close: () => gatehouse.shutdown(),
  };
}

export interface AppOnDatabase {
  db: TestDatabase;
  app: TestApp;
  /** closes the app, then drops its database */
  close(): Promise<void>;
}

/**
 * A fresh test database and Gatehouse booted in this process on it and the shared NATS, with
 * AUTH_IP_LIMIT out of the way (suites about the per-IP limit pass their own); `env` adds to or
 * overrides that.
 */
export async function bootAppOnTestDatabase(env: Record<string, string | undefined> = {}): Promise<AppOnDatabase> {
  const db = await createTestDatabase();
  let app: TestApp;
  try {
    app = await bootApp({ DATABASE_URL: db.url, NATS_URL, AUTH_IP_LIMIT: '100000', ...env });
  } catch (error) {
    await db.drop();
    throw error;
  }
  return {
    db,
    app,
    async close() {
      await app.close();
      await db.drop();
    },
  };
}
