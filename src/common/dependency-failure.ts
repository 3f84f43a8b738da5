import { AppError } from './app-error';

/**
 * Tells a dependency being unavailable (503 `unavailable`, a warning, no stack) apart from a
 * genuine bug (500 `internal_error`, an error with its stack). Only failures that say nothing
 * about the request itself count: the database unreachable, restarting, too slow for
 * DB_TIMEOUT_MS, out of connections, or serialization retries exhausted. Constraint
 * violations, syntax errors, missing tables and the like stay bugs.
 */

export type Dependency = 'database' | 'nats';

/** Thrown by our own deadlines (e.g. a transaction over DB_TIMEOUT_MS). */
export class DependencyUnavailableError extends Error {
  constructor(
    readonly dependency: Dependency,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${dependency} unavailable: ${reason}`, options);
    this.name = 'DependencyUnavailableError';
  }
}

/** Prisma error codes that mean the database could not serve, not that the query was wrong. */
const PRISMA_UNAVAILABLE = new Set([
  'P1001', // can't reach database server
  'P1002', // server reached but timed out
  'P1008', // operations timed out
  'P1017', // server closed the connection
  'P2024', // timed out fetching a connection from the pool
  'P2028', // transaction API: could not start in time, expired, closed by its timeout
  'P2034', // write conflict or deadlock (retries exhausted)
  'P2037', // too many database connections
]);

/** Driver-adapter error kinds with the same meaning. */
const ADAPTER_UNAVAILABLE = new Set([
  'DatabaseNotReachable',
  'ConnectionClosed',
  'SocketTimeout',
  'TooManyConnections',
  'TransactionWriteConflict',
]);

/**
 * Node errors of a connection that could not be opened. Only connections Gatehouse opens raise
 * them, and every other one (upstreams, the policy hook, NATS) maps its failures where it is
 * opened, so one that reaches a request's edge is the database's.
 */
const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

/**
 * Node errors of an open socket. They say a socket failed, not whose: a client hanging up fails
 * its request body with ECONNRESET. They count only where the database connection is known to
 * have raised them: on or inside an error the database client made (Prisma, its driver adapter),
 * or wrapped by `fromDatabaseCall` where our own code calls `pg` or a Prisma transaction ends.
 * @prisma/adapter-pg converts only the socket errors of its own list (ECONNRESET, ETIMEDOUT…
 * with `syscall` and `errno`) into a DriverAdapterError; any other, e.g. pg's `write EPIPE` on a
 * dropped connection, it rethrows as it is, and Prisma then makes it a
 * PrismaClientKnownRequestError whose own `code` is `EPIPE`: the code sits on the Prisma error
 * itself, not inside it.
 */
const SOCKET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT']);

/** Messages node-postgres uses for a connection that died or could not be had in time. */
const PG_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Query read timeout',
  'Client has encountered a connection error',
  'Connection ended',
  'Cannot use a pool after calling end',
];

/**
 * SQLSTATEs of an unavailable server: class 08 (connection exception), 53 (insufficient
 * resources), 57P01..57P05 (shutdown, crash, cannot connect now, idle session timeout),
 * 57014 (statement_timeout), 25P03 (idle_in_transaction timeout), 55P03 (lock_timeout),
 * 40001/40P01 (serialization failure, deadlock).
 */
function unavailableSqlState(code: string): boolean {
  return (
    code.startsWith('08') ||
    code.startsWith('53') ||
    code.startsWith('57P') ||
    code === '57014' ||
    code === '25P03' ||
    code === '55P03' ||
    code === '40001' ||
    code === '40P01'
  );
}

interface ErrorLike {
  name?: unknown;
  code?: unknown;
  kind?: unknown;
  message?: unknown;
  cause?: unknown;
  meta?: { driverAdapterError?: unknown };
  clientVersion?: unknown;
}

function isObject(value: unknown): value is ErrorLike {
  return typeof value === 'object' && value !== null;
}

/** An error the database client made: Prisma's (they carry clientVersion) or its driver adapter's. */
function fromDatabaseClient(error: ErrorLike): boolean {
  return error.clientVersion !== undefined || error.name === 'DriverAdapterError';
}

/** `viaDatabase`: `error` was found inside an error the database client made (or is one). */
function looksUnavailable(error: ErrorLike, viaDatabase: boolean): boolean {
  if (error instanceof DependencyUnavailableError) return error.dependency === 'database';
  const code = typeof error.code === 'string' ? error.code : undefined;
  if (code !== undefined) {
    // Prisma codes only on Prisma errors (they carry clientVersion), SQLSTATEs on driver errors
    if (/^P\d{4}$/.test(code) && error.clientVersion !== undefined) {
      if (PRISMA_UNAVAILABLE.has(code)) return true;
    } else if (CONNECT_CODES.has(code) || (SOCKET_CODES.has(code) && (viaDatabase || fromDatabaseClient(error)))) {
      return true;
    } else if (/^[0-9A-Z]{5}$/.test(code) && unavailableSqlState(code)) {
      return true;
    }
  }
  if (typeof error.kind === 'string') {
    if (ADAPTER_UNAVAILABLE.has(error.kind)) return true;
  }
  if (typeof error.message === 'string' && error.name !== 'PrismaClientKnownRequestError') {
    const message = error.message;
    if (PG_MESSAGES.some((text) => message.includes(text))) return true;
  }
  return false;
}

/**
 * Whether `error` (or what it wraps) says the database is unavailable: an error of the database
 * client (Prisma, its driver adapter, `pg`'s own messages, a PostgreSQL SQLSTATE) or our own
 * DependencyUnavailableError. A socket error counts when the database client raised it (it is, or
 * is inside, a Prisma or driver-adapter error); a bare one is not: nothing in it says it was the
 * database's socket (see SOCKET_CODES).
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  const seen = new Set<unknown>();
  const queue: { error: unknown; viaDatabase: boolean }[] = [{ error, viaDatabase: false }];
  while (queue.length > 0 && seen.size < 10) {
    const { error: current, viaDatabase } = queue.shift()!;
    if (!isObject(current) || seen.has(current)) continue;
    seen.add(current);
    if (looksUnavailable(current, viaDatabase)) return true;
    const inner = viaDatabase || fromDatabaseClient(current);
    queue.push({ error: current.cause, viaDatabase: inner }, { error: current.meta?.driverAdapterError, viaDatabase: inner });
    if (current instanceof AggregateError) {
      queue.push(...(current.errors as unknown[]).map((item) => ({ error: item, viaDatabase: inner })));
    }
  }
  return false;
}

/**
 * What a call of ours on a `pg` client or pool throws, made recognisable wherever it travels: a
 * bare socket error there can only be the database connection's, so it becomes a
 * DependencyUnavailableError (the original kept as its cause); anything else is returned as it is.
 */
export function fromDatabaseCall(error: unknown): unknown {
  if (
    isObject(error) &&
    !(error instanceof DependencyUnavailableError) &&
    typeof error.code === 'string' &&
    (SOCKET_CODES.has(error.code) || CONNECT_CODES.has(error.code))
  ) {
    return new DependencyUnavailableError('database', 'connection failed', { cause: error });
  }
  return error;
}

/** A short, log-safe reason (no SQL, no values): the codes involved. */
export function dependencyFailureReason(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 4 && isObject(current); depth += 1) {
    if (current instanceof DependencyUnavailableError) parts.push(current.reason);
    else if (typeof current.code === 'string') parts.push(current.code);
    else if (typeof current.kind === 'string') parts.push(current.kind);
    else if (typeof current.message === 'string') parts.push(current.message.slice(0, 80));
    const next: ErrorLike = current;
    current = next.meta?.driverAdapterError ?? next.cause;
  }
  return parts.join(' <- ') || 'unknown';
}

/** Seconds a client should wait before retrying a request refused for a dependency failure. */
export const DEPENDENCY_RETRY_AFTER_S = '1';

/**
 * The contract's answer to a database failure during a request (CONTRACT §14): 503
 * `unavailable` with Retry-After; `undefined` when `error` is something else.
 */
export function dependencyFailureAsAppError(error: unknown): AppError | undefined {
  if (!isDatabaseUnavailable(error)) return undefined;
  return new AppError('unavailable', {
    headers: { 'retry-after': DEPENDENCY_RETRY_AFTER_S },
    logReason: `database: ${dependencyFailureReason(error)}`,
  });
}
