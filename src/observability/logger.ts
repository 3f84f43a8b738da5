import cluster from 'node:cluster';
import pino, { type Logger } from 'pino';
import { requestContext } from '../common/request-context';

/**
 * Field names whose values are secrets wherever they appear in a logged object.
 * Log calls pass explicit fields, but this is the net under them.
 */
const REDACTED_PATHS = [
  'password',
  'new_password',
  'token',
  'refresh_token',
  'access_token',
  'id_token',
  'mfa_token',
  'login_code',
  'code',
  'recovery_code',
  'client_secret',
  'secret',
  'authorization',
  'cookie',
  'headers.authorization',
  'headers.cookie',
  'headers["set-cookie"]',
  'body',
  '*.password',
  '*.new_password',
  '*.token',
  '*.refresh_token',
  '*.access_token',
  '*.client_secret',
  '*.secret',
  '*.authorization',
  '*.cookie',
];

/**
 * The per-request line has a fixed set of fields, none of them secret, and carries the request's
 * ids itself: it is written by a sibling logger on the same destination without the redaction
 * pass and the context mixin, which together cost more than the rest of the line (profiled on
 * the proxied path).
 */
const requestLineLoggers = new WeakMap<Logger, Logger>();

export function requestLineLogger(logger: Logger): Logger {
  return requestLineLoggers.get(logger) ?? logger;
}

/** Where request lines go when written without pino (see `requestLineWriter`). */
export interface RequestLineWriter {
  /** whether `info` lines are written at all */
  enabled(): boolean;
  /** `{"level":"info","time":…` and the logger's base fields, without the closing brace */
  head(): string;
  write(line: string): void;
}

const requestLineWriters = new WeakMap<Logger, RequestLineWriter>();

/**
 * The request line's destination, for a line serialised by hand: the same bytes pino writes
 * (level, time, base fields, then the line's own fields and `msg`), without pino's generic
 * serialiser, which cost more than the write. Undefined for a logger createLogger did not make.
 */
export function requestLineWriter(logger: Logger): RequestLineWriter | undefined {
  return requestLineWriters.get(logger);
}

/** pino's isoTime, formatted once per millisecond rather than once per line. */
let lastMs = 0;
let lastTime = '';
function isoTime(): string {
  const now = Date.now();
  if (now !== lastMs) {
    lastMs = now;
    lastTime = `,"time":"${new Date(now).toISOString()}"`;
  }
  return lastTime;
}

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  // Lines are written in batches of 3.5-4 KiB, at least every 100 ms: under load one asynchronous
  // write per line cost as much as the line itself. A batch holds whole lines and stays within
  // PIPE_BUF (4096 on Linux), so the WORKERS processes sharing one stdout pipe never interleave
  // inside a line. Shutdown and exit flush.
  const stream = destination ?? pino.destination({ sync: false, minLength: 3584, maxWrite: 4096, periodicFlush: 100 });
  const shared = {
    level,
    // with WORKERS > 1, every line says which process of the replica wrote it
    base: cluster.isWorker && cluster.worker !== undefined ? { worker: cluster.worker.id } : undefined,
    timestamp: isoTime,
    messageKey: 'msg',
    formatters: { level: (label: string) => ({ level: label }) },
  };
  const logger = pino(
    {
      ...shared,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      // Every line written inside a request carries its ids.
      mixin() {
        const context = requestContext.get();
        if (context === undefined) return {};
        return {
          request_id: context.requestId,
          correlation_id: context.correlationId,
          trace_id: context.traceId,
          span_id: context.spanId,
        };
      },
    },
    stream,
  );
  const sibling = pino(shared, stream);
  requestLineLoggers.set(logger, sibling);
  const base = shared.base === undefined ? '' : `,"worker":${JSON.stringify(shared.base.worker)}`;
  requestLineWriters.set(logger, {
    enabled: () => sibling.isLevelEnabled('info'),
    head: () => `{"level":"info"${isoTime()}${base}`,
    write: (line) => stream.write(line),
  });
  return logger;
}

export const LOGGER = Symbol('LOGGER');
