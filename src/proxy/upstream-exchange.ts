import { Readable } from 'node:stream';
import { util, type Dispatcher } from 'undici';
import { DeadlineWatch } from './deadline-watch';
import { HopFailure } from './upstream-failure';
import type { HeaderMap } from './upstream-headers';

/** Bodies announced at most this long are read whole and sent in one write; longer or unknown ones stream. */
const BUFFERED_BODY_LIMIT = 64 * 1024;

/** An upstream answer's body: read whole (announced ≤ BUFFERED_BODY_LIMIT), or a stream. */
export type UpstreamBody = Buffer | Readable;

export interface UpstreamAnswer {
  statusCode: number;
  headers: HeaderMap;
  body: UpstreamBody;
}

/**
 * Attempts waiting for their response head, checked against their deadline on one shared watch
 * instead of a timer and an AbortController per attempt (both showed in the proxied path's
 * profile). A deadline fires at most DEADLINE_CHECK_MS late.
 */
const deadlines = new DeadlineWatch<UpstreamExchange>(() => performance.now());

/**
 * One upstream attempt as an undici dispatch handler: the promise of the answer, settled once
 * the body is in when it is announced short (no stream, no per-chunk events, one promise for the
 * whole exchange), at the head otherwise; and the UPSTREAM_TIMEOUT_MS deadline until the head.
 * What `Dispatcher.request` does, without its per-request AsyncResource, abort-signal listener
 * and body stream. A short body that fails after its head fails the attempt as a hop failure.
 * Failures are classified here (`classify`), so the caller needs no async wrapper of its own.
 */
export class UpstreamExchange implements Dispatcher.DispatchHandler {
  readonly answer: Promise<UpstreamAnswer>;
  deadline = Number.POSITIVE_INFINITY;
  watchSlot = -1;
  private resolveAnswer!: (answer: UpstreamAnswer) => void;
  private rejectAnswer!: (error: unknown) => void;
  private abort: ((reason: Error) => void) | undefined;
  /** why the attempt was cut short (its timeout), before undici's own error for it */
  private reason: Error | undefined;
  private settled = false;
  private statusCode = 0;
  private headers: HeaderMap | undefined;
  private chunks: Buffer[] | undefined;
  private received = 0;
  private stream: UpstreamBodyStream | undefined;

  constructor(
    private readonly method: string,
    private readonly timeoutMs: number,
    private readonly classify: (error: unknown) => unknown,
  ) {
    this.answer = new Promise<UpstreamAnswer>((resolve, reject) => {
      this.resolveAnswer = resolve;
      this.rejectAnswer = reject;
    });
  }

  /** Starts the deadline (now, or once a streamed request body has been sent). */
  startDeadline(): void {
    if (this.headers !== undefined || this.settled || this.reason !== undefined) return;
    this.deadline = performance.now() + this.timeoutMs;
    deadlines.add(this);
  }

  /** The head did not come in time (called by the deadline watch). */
  expire(): void {
    this.reason = new HopFailure('timeout', 'sent', `no response within ${this.timeoutMs} ms`);
    this.abort?.(this.reason);
  }

  onConnect(abort: (reason?: Error) => void): void {
    if (this.reason !== undefined) abort(this.reason);
    else this.abort = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (statusCode < 200) return true;
    deadlines.delete(this);
    const headers = util.parseHeaders(rawHeaders) as HeaderMap;
    const length = Number(headers['content-length'] ?? Number.NaN);
    if (this.method === 'HEAD' || length <= BUFFERED_BODY_LIMIT) {
      this.statusCode = statusCode;
      this.headers = headers;
      this.chunks = [];
      return true;
    }
    this.stream = new UpstreamBodyStream(resume, this.abort);
    this.settled = true;
    this.resolveAnswer({ statusCode, headers, body: this.stream });
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
    this.settled = true;
    this.resolveAnswer({
      statusCode: this.statusCode,
      headers: this.headers!,
      body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, this.received),
    });
  }

  onError(error: Error): void {
    deadlines.delete(this);
    const failure = this.reason ?? error;
    if (!this.settled) {
      this.settled = true;
      this.rejectAnswer(this.classify(failure));
      return;
    }
    this.stream?.destroy(failure);
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
