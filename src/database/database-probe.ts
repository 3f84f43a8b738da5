import pg from 'pg';

const PROBE_TIMEOUT_MS = 1000;

/**
 * Checks the database on a connection of its own, outside the request pool, so the answer
 * never waits behind request traffic (a busy or slow pool would otherwise make a healthy
 * replica look unready). The connection is opened lazily and replaced after any failure.
 */
export class DatabaseProbe {
  private client: pg.Client | undefined;
  private connecting: Promise<pg.Client> | undefined;

  constructor(private readonly databaseUrl: string) {}

  /** true when one `SELECT 1` round trip succeeded within the probe's timeout. */
  async check(): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), PROBE_TIMEOUT_MS);
    });
    const attempt = (async () => {
      const client = await this.connect();
      await client.query('SELECT 1');
      return true as const;
    })();
    try {
      const ok = await Promise.race([attempt, timeout]);
      if (!ok) this.reset();
      return ok;
    } catch {
      this.reset();
      return false;
    } finally {
      clearTimeout(timer);
      // a late failure of an abandoned attempt is expected, not unhandled
      attempt.catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.connecting = undefined;
    await client?.end().catch(() => undefined);
  }

  private connect(): Promise<pg.Client> {
    if (this.client !== undefined) return Promise.resolve(this.client);
    this.connecting ??= (async () => {
      const client = new pg.Client({
        connectionString: this.databaseUrl,
        connectionTimeoutMillis: PROBE_TIMEOUT_MS,
        statement_timeout: PROBE_TIMEOUT_MS,
        application_name: 'gatehouse-probe',
      });
      client.on('error', () => this.reset());
      try {
        await client.connect();
      } catch (error) {
        this.connecting = undefined;
        await client.end().catch(() => undefined);
        throw error;
      }
      this.client = client;
      this.connecting = undefined;
      return client;
    })();
    return this.connecting;
  }

  private reset(): void {
    const client = this.client;
    this.client = undefined;
    this.connecting = undefined;
    void client?.end().catch(() => undefined);
  }
}
