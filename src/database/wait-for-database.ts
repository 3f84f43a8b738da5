import pg from 'pg';
import type { Logger } from 'pino';
import { fromDatabaseCall, isDatabaseUnavailable } from '../common/dependency-failure';
import { startup } from '../observability/startup';

const ATTEMPT_TIMEOUT_MS = 2000;
const RETRY_MS = 500;

/**
 * At start, waits until PostgreSQL accepts a connection: a database that is restarting or not
 * up yet is waited for (the early listener says so on /health), while a refusal that says
 * something about our configuration (wrong password, unknown database, TLS) ends the start.
 */
export async function waitForDatabase(databaseUrl: string, logger: Logger): Promise<void> {
  let waitingSince: number | undefined;
  try {
    for (;;) {
      const client = new pg.Client({
        connectionString: databaseUrl,
        connectionTimeoutMillis: ATTEMPT_TIMEOUT_MS,
        query_timeout: ATTEMPT_TIMEOUT_MS,
        application_name: 'gatehouse-start',
      });
      client.on('error', () => undefined);
      try {
        await client.connect();
        await client.query('SELECT 1');
        if (waitingSince !== undefined) logger.info({ waited_ms: Date.now() - waitingSince }, 'database reachable; starting');
        return;
      } catch (error) {
        if (!isDatabaseUnavailable(fromDatabaseCall(error))) throw error;
        if (waitingSince === undefined) {
          waitingSince = Date.now();
          startup.waitFor('database');
          logger.warn({ reason: (error as Error).message }, 'waiting for the database at start; /health answers meanwhile');
        }
      } finally {
        await client.end().catch(() => undefined);
      }
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  } finally {
    startup.done('database');
  }
}
