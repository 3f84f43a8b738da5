import { Readable } from 'node:stream';
import { util, type Dispatcher } from 'undici';
import { HopFailure } from './upstream-failure';
import type { HeaderMap } from './upstream-headers';

/** Bodies announced at most this long are read whole and sent in one write; longer or unknown ones stream. */
export const BUFFERED_BODY_LIMIT = 64 * 1024;

/** An upstream answer's body: read whole (announced ≤ BUFFERED_BODY_LIMIT), or a stream. */
export type UpstreamBody = { kind: 'buffered'; whole: Promise<Buffer> } | { kind: 'stream'; stream: Readable };

export interface UpstreamHead {
  statusCode: number;
  headers: HeaderMap;
  body: UpstreamBody;
}

/**
 * Attempts waiting for their response head, checked against their deadline every
 * DEADLINE_CHECK_MS while any is waiting: one interval for all of them instead of a timer and
 * an AbortController per attempt (both showed in the proxied path's profile). A deadline fires
 * at most DEADLINE_CHECK_MS late.
 */
const DEADLINE_CHECK_MS = 20;

class HeadDeadlines {
  private readonly waiting = new Set<UpstreamExchange>();
  private timer: NodeJS.Timeout | undefined;

  add(exchange: UpstreamExchange): void {
    this.waiting.add(exchange);
    this.timer ??= setInterval(() => this.check(), DEADLINE_CHECK_MS).unref();
  }

  delete(exchange: UpstreamExchange): void {
    this.waiting.delete(exchange);
  }

  private check(): void {
    const now = performance.now();
    for (const exchange of this.waiting) {
      if (now >= exchange.deadline) {
        this.waiting.delete(exchange);
        exchange.timedOut();
      }
    }
    if (this.waiting.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}

const deadlines = new HeadDeadlines();

/**
 * One upstream attempt as an undici dispatch handler: the promise of the response head, the
 * body read whole when it is announced small (no stream, no per-chunk events), and the
 * UPSTREAM_TIMEOUT_MS deadline until the head. What `Dispatcher.request` does, without its
 * per-request AsyncResource, abort-signal listener and body stream.
 */
export class UpstreamExchange implements Dispatcher.DispatchHandler {
  readonly head: Promise<UpstreamHead>;
  deadline = Number.POSITIVE_INFINITY;
  private resolveHead!: (head: UpstreamHead) => void;
  private rejectHead!: (error: unknown) => void;
  private abort: ((reason: Error) => void) | undefined;
  /** why the attempt was cut short (its timeout), before undici's own error for it */
  private reason: Error | undefined;
  private answered = false;
  private chunks: Buffer[] | undefined;
  private received = 0;
  private resolveBody: ((body: Buffer) => void) | undefined;
  private rejectBody: ((error: unknown) => void) | undefined;
  private stream: UpstreamBodyStream | undefined;

  constructor(
    private readonly method: string,
    private readonly timeoutMs: number,
  ) {
    this.head = new Promise<UpstreamHead>((resolve, reject) => {
      this.resolveHead = resolve;
      this.rejectHead = reject;
    });
  }

  /** Starts the deadline (now, or once a streamed request body has been sent). */
  startDeadline(): void {
    if (this.answered || this.reason !== undefined) return;
    this.deadline = performance.now() + this.timeoutMs;
    deadlines.add(this);
  }

  timedOut(): void {
    this.reason = new HopFailure('timeout', 'sent', `no response within ${this.timeoutMs} ms`);
    this.abort?.(this.reason);
  }

  onConnect(abort: (reason?: Error) => void): void {
    if (this.reason !== undefined) abort(this.reason);
    else this.abort = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (statusCode < 200) return true;
    this.answered = true;
    deadlines.delete(this);
    const headers = util.parseHeaders(rawHeaders) as HeaderMap;
    const length = Number(headers['content-length'] ?? Number.NaN);
    let body: UpstreamBody;
    if (this.method === 'HEAD' || length <= BUFFERED_BODY_LIMIT) {
      this.chunks = [];
      body = {
        kind: 'buffered',
        whole: new Promise<Buffer>((resolve, reject) => {
          this.resolveBody = resolve;
          this.rejectBody = reject;
        }),
      };
    } else {
      this.stream = new UpstreamBodyStream(resume, this.abort);
      body = { kind: 'stream', stream: this.stream };
    }
    this.resolveHead({ statusCode, headers, body });
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.stream !== undefined) return this.stream.push(chunk);
    this.chunks!.push(chunk);
    this.received += chunk.length;
    return true;
  }

  onComplete(): void {
    if (this.stream !== undefined) {
      this.stream.push(null);
      return;
    }
    const chunks = this.chunks!;
    this.resolveBody!(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, this.received));
  }

  onError(error: Error): void {
    deadlines.delete(this);
    const failure = this.reason ?? error;
    if (!this.answered) {
      this.answered = true;
      this.rejectHead(failure);
      return;
    }
    if (this.stream !== undefined) this.stream.destroy(failure);
    else this.rejectBody?.(failure);
  }
}

/** A long upstream body as it arrives; reading resumes undici's socket, destroying aborts the call. */
class UpstreamBodyStream extends Readable {
  constructor(
    private readonly resumeSocket: () => void,
    private readonly abortCall: ((reason: Error) => void) | undefined,
  ) {
    super();
  }

  override _read(): void {
    this.resumeSocket();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.readableEnded) this.abortCall?.(error ?? new Error('upstream body discarded'));
    callback(error);
  }
}
