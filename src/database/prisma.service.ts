import { PrismaPg } from '@prisma/adapter-pg';
import type * as runtime from '@prisma/client/runtime/client';
import pg from 'pg';
import { DependencyUnavailableError, fromDatabaseCall } from '../common/dependency-failure';
import { PrismaClient, type Prisma } from '../generated/prisma/client';
import type { Db } from './transaction';

export const DEFAULT_DB_TIMEOUT_MS = 3000;

interface TransactionOptions {
  maxWait?: number;
  timeout?: number;
  isolationLevel?: Prisma.TransactionIsolationLevel;
}

type TransactionClient = Prisma.TransactionClient;

/**
 * The Prisma client on the pg driver adapter; built by DatabaseModule once the database is up.
 *
 * Every wait on the database is bounded by DB_TIMEOUT_MS (`timeoutMs`), so a slow or absent
 * database turns into 503 `unavailable` in about that time instead of holding requests:
 *  - waiting for a pooled connection: the pool's `connectionTimeoutMillis`;
 *  - one statement: `statement_timeout` on the server and `query_timeout` in the client (the
 *    latter also covers a network that stopped answering);
 *  - a transaction, *including* its wait for a connection: a deadline around the callback.
 *    When it passes, the callback rejects, so Prisma rolls back and never commits: a request
 *    answered 503 has left nothing behind. Prisma's own maxWait/timeout are the backstop, and
 *    `idle_in_transaction_session_timeout` frees the server side of an abandoned one.
 */
export class PrismaService extends PrismaClient {
  /**
   * The pool Prisma's adapter uses, also used directly by `prepared` for the few statements on
   * the hottest paths (sign-in, refresh rotation, /me): a named prepared statement sent by `pg`
   * skips Prisma's query interpreter, which cost more CPU than the statement itself.
   */
  private readonly pool: pg.Pool;

  constructor(
    readonly databaseUrl: string,
    poolSize: number,
    readonly timeoutMs: number = DEFAULT_DB_TIMEOUT_MS,
    /** the in-process store (one connection at a time, never "down" while we live) */
    readonly embedded = false,
  ) {
    const pool = new pg.Pool({
      connectionString: databaseUrl,
      max: poolSize,
      connectionTimeoutMillis: timeoutMs,
      statement_timeout: timeoutMs,
      query_timeout: timeoutMs,
      idle_in_transaction_session_timeout: timeoutMs,
      keepAlive: true,
    });
    super({
      adapter: new PrismaPg(pool, { disposeExternalPool: true }),
      transactionOptions: { maxWait: timeoutMs, timeout: timeoutMs },
    });
    this.pool = pool;
  }

  /**
   * Runs `statement` as a named prepared statement on a pooled connection, outside any
   * transaction (each connection parses and plans it once). Rows come as `pg` decodes them:
   * timestamptz as Date, int8 as string, arrays as arrays. Same DB_TIMEOUT_MS bounds as Prisma's.
   */
  async prepared<Row>(statement: PreparedStatement, values: unknown[]): Promise<Row[]> {
    try {
      const result = await this.pool.query<Row & pg.QueryResultRow>({ name: statement.name, text: statement.text, values });
      return result.rows;
    } catch (error) {
      throw fromDatabaseCall(error);
    }
  }

  /**
   * Runs `work` on one pooled connection held for its duration, for a transaction sent by `pg`
   * itself (the audit publisher's: a few fixed statements, without Prisma's query interpreter).
   * `work` must end any transaction it opens; a connection it failed on is closed, not reused.
   * Same bounds as the pool's other users (connection wait, statement and idle-in-transaction timeouts).
   *
   * While `work` holds the connection, the pool no longer listens for its errors: the server
   * ending the session between two queries (e.g. a terminated backend while the audit publisher
   * waits for acks) would be an unhandled 'error' event, which ends the process. It is kept here;
   * the next query on the connection fails, and the connection is closed at release.
   */
  async withConnection<R>(work: (client: pg.PoolClient) => Promise<R>): Promise<R> {
    const client = await this.pool.connect();
    let failure: Error | undefined;
    const onError = (error: Error) => {
      failure ??= error;
    };
    client.on('error', onError);
    try {
      return await work(client);
    } catch (error) {
      failure ??= error instanceof Error ? error : new Error(String(error));
      throw error;
    } finally {
      client.removeListener('error', onError);
      client.release(failure);
    }
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Prisma's own signature
  override $transaction<P extends Prisma.PrismaPromise<any>[]>(
    arg: [...P],
    options?: TransactionOptions,
  ): Promise<runtime.Types.Utils.UnwrapTuple<P>>;
  override $transaction<R>(fn: (prisma: TransactionClient) => Promise<R>, options?: TransactionOptions): Promise<R>;
  override $transaction(arg: unknown, options?: TransactionOptions): Promise<unknown> {
    const base = PrismaClient.prototype.$transaction as (
      this: PrismaService,
      arg: unknown,
      options?: TransactionOptions,
    ) => Promise<unknown>;
    const budget = options?.timeout ?? this.timeoutMs;
    const settings: TransactionOptions = { ...options, maxWait: options?.maxWait ?? budget, timeout: budget };
    // A transaction's begin and commit run in the adapter, which rethrows socket errors outside its
    // own list as they are (pg's EPIPE): one ending a transaction is the database connection's.
    const fromConnection = (error: unknown) => {
      throw fromDatabaseCall(error);
    };
    if (typeof arg !== 'function') return base.call(this, arg, settings).catch(fromConnection);
    const work = arg as (tx: TransactionClient) => Promise<unknown>;
    const started = Date.now();
    return base
      .call(
        this,
        (tx: TransactionClient) => {
          const remaining = budget - (Date.now() - started);
          if (remaining <= 0) {
            throw new DependencyUnavailableError('database', 'transaction deadline passed while waiting for a connection');
          }
          return withDeadline(work(tx), remaining, () => new DependencyUnavailableError('database', `transaction exceeded ${budget} ms`));
        },
        settings,
      )
      .catch(fromConnection);
  }

  /** Readiness probe: one round trip, bounded in time. */
  async ping(timeoutMs = 1000): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      });
      return await Promise.race([this.$queryRaw`SELECT 1`.then(() => true), timeout]);
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** A statement `PrismaService.prepared` can send; `name` must be unique per text. */
export interface PreparedStatement {
  name: string;
  text: string;
}

/** Rejects with `onTimeout()` after `ms`; `work` keeps running (its outcome is then ignored). */
function withDeadline<R>(work: Promise<R>, ms: number, onTimeout: () => Error): Promise<R> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

/**
 * `statement` through `db`: a prepared statement on the pool when `db` is the client itself,
 * the same SQL through Prisma when it is a transaction (whose connection Prisma holds).
 */
export function queryPrepared<Row>(db: Db, statement: PreparedStatement, values: unknown[]): Promise<Row[]> {
  if (isRootClient(db)) return db.prepared<Row>(statement, values);
  return db.$queryRawUnsafe<Row[]>(statement.text, ...values);
}

/**
 * The client itself, not an interactive transaction's client. `instanceof` cannot tell: Prisma's
 * constructor returns a wrapper, and a transaction's client forwards `prepared` to the root one
 * (which would run outside the transaction). A transaction's client has no `$connect`.
 */
function isRootClient(db: Db): db is Db & Pick<PrismaService, 'prepared'> {
  return typeof (db as { $connect?: unknown }).$connect === 'function' && typeof (db as { prepared?: unknown }).prepared === 'function';
}
