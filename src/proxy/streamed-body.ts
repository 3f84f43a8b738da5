import { Readable } from 'node:stream';
import { AppError } from '../common/app-error';

const EMPTY = Buffer.alloc(0);

/** A request stream destroyed before its end was read (its events have all been emitted). */
function clientGone(source: Readable): boolean {
  return source.destroyed && !source.readableEnded;
}
/** Declared bodies up to this long are read whole before the upstream call (see `readSmall`). */
export const SMALL_BODY_BYTES = 16 * 1024;

/**
 * A proxied request's body as it arrives from the client, handed to the upstream call without
 * being read first. CONTRACT §1's 1 MiB limit is applied as the bytes pass: a declared length
 * above it is refused before any upstream contact (the body parser), an undeclared one fails at
 * the chunk that crosses it. Failures of the client's side (limit crossed, client gone) are
 * recorded here so the upstream client does not count them against the upstream endpoint.
 */
export class StreamedBody {
  /** set when the body failed on the client's side; the call answers with it */
  failure: AppError | undefined;

  constructor(
    private readonly source: Readable,
    /** the declared Content-Length; undefined for a chunked body */
    readonly contentLength: number | undefined,
    private readonly limit: number,
  ) {}

  /** Whether any of the body has been consumed (then a retry elsewhere cannot resend it). */
  get touched(): boolean {
    return this.source.readableDidRead || this.failure !== undefined;
  }

  /**
   * A small body with a declared length (at most SMALL_BODY_BYTES), read whole before the
   * upstream is contacted, as nginx buffers request bodies: it goes out in one write with the
   * request head and can be sent again to another endpoint. Undefined for a longer or chunked
   * body, which streams. Rejects with the client-side failure when the client does not finish it.
   */
  readSmall(): Promise<Buffer> | undefined {
    const length = this.contentLength;
    if (length === undefined || length > SMALL_BODY_BYTES || this.touched) return undefined;
    if (length === 0) return Promise.resolve(EMPTY);
    const source = this.source;
    // the client hung up before this (e.g. while the call was being authorized): its 'close' has
    // been emitted already and no byte will come
    if (clientGone(source)) return Promise.reject(this.clientFailed(new Error('client closed the request')));
    return new Promise<Buffer>((resolve, reject) => {
      // listeners added with `on` and all removed at the first of end, error or close (`once`
      // wraps each in two more objects); a second chunk is rare for a body this small
      let first: Buffer | undefined;
      let more: Buffer[] | undefined;
      let received = 0;
      const finish = (error?: Error) => {
        source.off('data', onData);
        source.off('end', onEnd);
        source.off('error', finish);
        source.off('close', onClose);
        if (error !== undefined) reject(this.clientFailed(error));
        else if (more === undefined) resolve(first ?? EMPTY);
        else resolve(Buffer.concat(more, received));
      };
      const onData = (chunk: Buffer) => {
        received += chunk.length;
        if (first === undefined) first = chunk;
        else (more ??= [first]).push(chunk);
      };
      const onEnd = () => (received === length ? finish() : finish(new Error(`body of ${received} bytes, ${length} declared`)));
      const onClose = () => finish(new Error('client closed the request'));
      source.on('data', onData);
      source.on('end', onEnd);
      source.on('error', finish);
      source.on('close', onClose);
    });
  }

  /**
   * A stream for one attempt. The HTTP client destroys the stream it was given when the call
   * fails; that must not destroy the client's request (and its connection, which still needs
   * the error answer), and a connect failure must leave the body unread for the next endpoint:
   * so each attempt gets a relay that starts pulling from the source on its first read.
   */
  forUpstream(): Readable {
    return new BodyRelay(this.source, this);
  }

  /** The relay's view of the limit: false once it is crossed (the failure is then recorded). */
  count(received: number): boolean {
    if (this.contentLength !== undefined || received <= this.limit) return true;
    this.failure = new AppError('payload_too_large', { logReason: `request body above ${this.limit} bytes` });
    return false;
  }

  clientFailed(error: Error): AppError {
    this.failure ??= new AppError('validation_failed', { detail: 'request body incomplete', logReason: `client body: ${error.message}` });
    return this.failure;
  }
}

class BodyRelay extends Readable {
  private attached = false;
  private received = 0;

  constructor(
    private readonly source: Readable,
    private readonly body: StreamedBody,
  ) {
    super();
  }

  override _read(): void {
    if (!this.attached) {
      this.attached = true;
      // the client hung up before the upstream call began: end the relay with the client's failure
      // rather than leave the upstream request waiting (untimed) for a body that never comes
      if (clientGone(this.source)) {
        this.destroy(this.body.clientFailed(new Error('client closed the request')));
        return;
      }
      this.source.on('data', this.onData);
      this.source.once('end', this.onEnd);
      this.source.once('error', this.onError);
      this.source.once('aborted', this.onAborted);
    }
    this.source.resume();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.detach();
    callback(error);
  }

  private readonly onData = (chunk: Buffer): void => {
    this.received += chunk.length;
    if (!this.body.count(this.received)) {
      this.destroy(this.body.failure);
      return;
    }
    if (!this.push(chunk)) this.source.pause();
  };

  private readonly onEnd = (): void => {
    this.detach();
    this.push(null);
  };

  private readonly onError = (error: Error): void => {
    this.destroy(this.body.clientFailed(error));
  };

  private readonly onAborted = (): void => {
    this.destroy(this.body.clientFailed(new Error('client aborted the request')));
  };

  private detach(): void {
    this.source.off('data', this.onData);
    this.source.off('end', this.onEnd);
    this.source.off('error', this.onError);
    this.source.off('aborted', this.onAborted);
  }
}
