import cluster from 'node:cluster';
import fs from 'node:fs';
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

/**
 * pino's isoTime (`,"time":"2026-01-01T00:00:00.000Z"`), the date part formatted once per second:
 * at a few thousand lines a second nearly every line has a millisecond of its own, and
 * `toISOString` cost more than the rest of the line's fields.
 */
let lastSecond = -1;
let secondPrefix = '';
let lastMs = -1;
let lastTime = '';
function isoTime(): string {
  const now = Date.now();
  if (now === lastMs) return lastTime;
  lastMs = now;
  const ms = now % 1000;
  const second = now - ms;
  if (second !== lastSecond) {
    lastSecond = second;
    // `2026-01-01T00:00:00.` (the ISO string without its milliseconds and the Z)
    secondPrefix = `,"time":"${new Date(second).toISOString().slice(0, 20)}`;
  }
  lastTime = `${secondPrefix}${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}Z"`;
  return lastTime;
}

/** Request lines are handed to the destination in batches of at least this many bytes… */
const LINE_BATCH_BYTES = 3584;
/** …and at most this many (PIPE_BUF on Linux: one write of it is never interleaved with another process's). */
const LINE_BATCH_MAX_BYTES = 4096;
/** A batch waits at most this long. */
const LINE_BATCH_MS = 100;

/**
 * Request lines gathered into one write of 3.5–4 KiB (at least every 100 ms, and at exit): the
 * destination is synchronous, so a line costs a copy into the batch and a batch one `write(2)`.
 * An asynchronous write hands each batch to libuv's thread pool, whose wake-up cost more on the
 * proxied path than the write; pino's own per-line bookkeeping measured the whole pending batch
 * again on every line. A batch holds whole lines and stays within PIPE_BUF, so the `WORKERS`
 * processes sharing one stdout pipe never interleave inside a line.
 *
 * Lines are encoded into one reused buffer, written to the destination's descriptor as bytes:
 * a batch kept as a string was one more copy of every line on the JavaScript heap (the joined
 * batch, then its UTF-8 encoding for the write), about 600 bytes per proxied request (profiled).
 * The destination is synchronous (nothing of it is pending once its `write` returns), so lines
 * written past the batch (other log lines) keep their order. A write that finds the destination
 * full (EAGAIN: a socket or tty, e.g. journald's stdout) is retried with the remaining bytes
 * after a short pause, so the batch stays one run of bytes no other process writes into; only
 * an error that retrying cannot cure hands the rest to the destination's own write.
 */
/** Write errors after which the rest of a batch is written again, after a pause. */
const RETRYABLE_WRITE = new Set(['EAGAIN', 'EBUSY']);
/** The pause doubles from 1 ms up to this. */
const MAX_WRITE_PAUSE_MS = 64;
const PAUSE = new Int32Array(new SharedArrayBuffer(4));

export class LineBatch {
  private readonly buffer = Buffer.allocUnsafe(LINE_BATCH_MAX_BYTES);
  private bytes = 0;
  /** drains every LINE_BATCH_MS while lines come; stopped at the first tick that finds none (an idle process does not wake for it) */
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly stream: pino.DestinationStream & { fd?: number }) {
    process.once('exit', () => this.drain());
  }

  private tick(): void {
    if (this.bytes === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
      return;
    }
    this.drain();
  }

  write(line: string): void {
    this.timer ??= setInterval(() => this.tick(), LINE_BATCH_MS).unref();
    // UTF-8 takes at most 3 bytes per UTF-16 unit: measured only when the line might not fit
    if (this.bytes + line.length * 3 > LINE_BATCH_MAX_BYTES) {
      const bytes = Buffer.byteLength(line);
      if (this.bytes + bytes > LINE_BATCH_MAX_BYTES) this.drain();
      if (bytes > LINE_BATCH_MAX_BYTES) {
        // longer than a batch: written alone, as it comes
        this.stream.write(line);
        return;
      }
    }
    this.bytes += this.buffer.write(line, this.bytes);
    if (this.bytes >= LINE_BATCH_BYTES) this.drain();
  }

  drain(): void {
    if (this.bytes === 0) return;
    const length = this.bytes;
    this.bytes = 0;
    const fd = this.stream.fd;
    let written = 0;
    if (typeof fd === 'number') {
      let pause = 1;
      while (written < length) {
        try {
          written += fs.writeSync(fd, this.buffer, written, length - written);
        } catch (error) {
          // a full socket or tty (EAGAIN): wait a little and write the remaining bytes ourselves,
          // as SonicBoom does for its synchronous writes; nothing else of this process writes meanwhile
          if (!RETRYABLE_WRITE.has((error as NodeJS.ErrnoException).code ?? '')) break;
          Atomics.wait(PAUSE, 0, 0, pause);
          pause = Math.min(pause * 2, MAX_WRITE_PAUSE_MS);
        }
      }
      if (written === length) return;
    }
    // the descriptor refused for good (or there is none): the destination's own write takes the
    // rest, decoded from a character boundary (never from inside a multi-byte character)
    while (written < length && (this.buffer[written] & 0xc0) === 0x80) written += 1;
    if (written < length) this.stream.write(this.buffer.toString('utf8', written, length));
  }
}

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  // Synchronous, as pino's own default: the request lines, nearly all of the volume, arrive here
  // in batches (LineBatch); other lines are rare and written as they come. A test's destination
  // gets every line at once.
  const stream = destination ?? pino.destination({ sync: true, maxWrite: LINE_BATCH_MAX_BYTES });
  const batch = destination === undefined ? new LineBatch(stream) : undefined;
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
    write: batch === undefined ? (line) => stream.write(line) : (line) => batch.write(line),
  });
  return logger;
}

export const LOGGER = Symbol('LOGGER');
