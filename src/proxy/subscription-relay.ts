import type { Duplex } from 'node:stream';
import { CLOSE_INTERNAL_ERROR, CLOSE_MESSAGE_TOO_BIG, CLOSE_NORMAL, FrameScanner, closeFrame, type ScanStop } from './subscription-frames';

/** RFC 6455 §7.4.1: the endpoint went away without a close frame (never sent, only reported). */
const CLOSE_ABNORMAL = 1006;
/** RFC 6455 §7.4.1: a close frame without a status code (never sent, only reported). */
const CLOSE_NO_STATUS = 1005;
/** How long a socket that was sent a close frame may take to hang up before it is destroyed. */
const CLOSE_WAIT_MS = 5_000;

export interface RelayOptions {
  /** the client's stream after the 101, and what it sent along with its handshake */
  client: Duplex;
  clientHead: Buffer;
  /** the upstream's stream after its 101, and what it sent along with it */
  upstream: Duplex;
  upstreamHead: Buffer;
  maxMessageBytes: number;
  /** asked at every client message; a stop closes the client with its code (the message is dropped) */
  admitClientMessage?: () => ScanStop | undefined;
  /** called once, when the relay ends, with the code the client got (or sent) and why */
  onEnd(code: number, reason: string): void;
}

/**
 * One relayed WebSocket, as nginx relays it: after both handshakes (no extension on either leg)
 * the two streams are copied chunk for chunk, each through a FrameScanner that follows frame
 * boundaries without parsing messages. Client frames stay masked (the upstream needs them so),
 * upstream frames stay unmasked (the client needs them so). The scanners enforce the message
 * size (1009) and the client's message rate (1008), and let the relay put its own close frame
 * at a frame boundary: unmasked toward the client, masked toward the upstream.
 *
 * Closing: a client's close frame is relayed and so is the upstream's answer to it; a close frame
 * the upstream sends first, or the upstream failing, closes the client with 1011; `close()` (policy,
 * shutdown, rebalancing) sends the client its code and the upstream 1000.
 */
export class SocketRelay {
  private readonly toUpstream: FrameScanner;
  private readonly toClient: FrameScanner;
  /** the close code of the client's close frame, once it sent one (then the upstream's reply is relayed) */
  private clientCloseCode: number | undefined;
  private finished = false;
  /** a close for the client waiting for the upstream→client stream to reach a frame boundary */
  private pendingClose: Buffer | undefined;
  private readonly goneListeners: Array<() => void> = [];
  private clientGone = false;
  private upstreamGone = false;

  constructor(private readonly options: RelayOptions) {
    this.toUpstream = new FrameScanner({
      masked: true,
      maxMessageBytes: options.maxMessageBytes,
      admitMessage: options.admitClientMessage,
      onClose: (code) => {
        if (this.clientCloseCode === undefined) {
          // the upstream answers the client's close within CLOSE_WAIT_MS, or the relay ends both
          // connections (else an upstream that never answers would hold the subscription's slot)
          setTimeout(() => this.close(CLOSE_NORMAL, 'upstream did not answer the close'), CLOSE_WAIT_MS).unref();
        }
        this.clientCloseCode = code ?? CLOSE_NO_STATUS;
        return undefined;
      },
    });
    this.toClient = new FrameScanner({
      masked: false,
      maxMessageBytes: options.maxMessageBytes,
      // the upstream's answer to the client's close is relayed; a close it starts is its failure
      onClose: () => (this.clientCloseCode === undefined ? { code: CLOSE_INTERNAL_ERROR, reason: 'upstream closed' } : undefined),
    });
  }

  /** Starts copying; the sockets are the relay's from now on. */
  start(): void {
    const { client, upstream } = this.options;
    for (const socket of [client, upstream]) {
      const tcp = socket as Duplex & { setNoDelay?: (noDelay: boolean) => void; setTimeout?: (ms: number) => void };
      tcp.setNoDelay?.(true);
      tcp.setTimeout?.(0);
      socket.removeAllListeners('error');
    }
    client.on('data', (chunk: Buffer) => this.fromClient(chunk));
    upstream.on('data', (chunk: Buffer) => this.fromUpstream(chunk));
    client.on('error', () => client.destroy());
    upstream.on('error', () => upstream.destroy());
    client.on('end', () => this.clientEnded());
    upstream.on('end', () => this.upstreamEnded());
    client.once('close', () => {
      this.clientGone = true;
      this.clientEnded();
      this.maybeGone();
    });
    upstream.once('close', () => {
      this.upstreamGone = true;
      this.upstreamEnded();
      this.maybeGone();
    });
    if (upstream.destroyed) {
      this.upstreamGone = true;
      this.upstreamEnded();
    }
    if (this.options.clientHead.length > 0) this.fromClient(this.options.clientHead);
    if (this.options.upstreamHead.length > 0) this.fromUpstream(this.options.upstreamHead);
  }

  /** Closes both sides: `code` to the client (at a frame boundary), 1000 to the upstream. */
  close(code: number, reason: string): void {
    if (this.finished) return;
    this.end(code, reason);
    this.closeClient(code, reason);
    this.closeUpstream();
  }

  /** Both sockets are closed (now, or later). */
  onGone(listener: () => void): void {
    if (this.clientGone && this.upstreamGone) listener();
    else this.goneListeners.push(listener);
  }

  /** the relay has ended (the sockets may still be closing) */
  get ended(): boolean {
    return this.finished;
  }

  get gone(): boolean {
    return this.clientGone && this.upstreamGone;
  }

  destroy(): void {
    this.options.client.destroy();
    this.options.upstream.destroy();
  }

  private fromClient(chunk: Buffer): void {
    if (this.finished) return;
    const out = this.toUpstream.scan(chunk);
    if (out.length > 0) this.write(this.options.client, this.options.upstream, out);
    const stop = this.toUpstream.stopped;
    if (stop !== undefined) this.close(stop.code, stop.reason);
  }

  private fromUpstream(chunk: Buffer): void {
    if (this.finished && this.pendingClose === undefined) return;
    const out = this.toClient.scan(chunk);
    if (out.length > 0) this.write(this.options.upstream, this.options.client, out);
    const stop = this.toClient.stopped;
    if (stop === undefined) return;
    if (this.pendingClose !== undefined) {
      // the boundary the relay's own close was waiting for
      this.options.client.end(this.pendingClose);
      this.pendingClose = undefined;
      return;
    }
    const code = stop.code === CLOSE_MESSAGE_TOO_BIG ? CLOSE_MESSAGE_TOO_BIG : CLOSE_INTERNAL_ERROR;
    const reason =
      stop.code === CLOSE_MESSAGE_TOO_BIG
        ? 'upstream message too big'
        : stop.code === CLOSE_INTERNAL_ERROR
          ? stop.reason
          : 'upstream failed';
    this.close(code, reason);
  }

  /** Backpressure: a source whose peer cannot take more now waits for the peer's drain. */
  private write(source: Duplex, target: Duplex, data: Buffer): void {
    if (target.write(data) || source.isPaused()) return;
    source.pause();
    target.once('drain', () => source.resume());
  }

  private clientEnded(): void {
    if (this.finished) {
      this.options.upstream.end();
      return;
    }
    if (this.clientCloseCode !== undefined) {
      // its close frame went upstream already
      this.end(this.clientCloseCode, 'client closed');
      this.options.upstream.end();
      return;
    }
    this.end(CLOSE_ABNORMAL, 'client closed');
    this.options.client.destroy();
    this.closeUpstream();
  }

  private upstreamEnded(): void {
    if (this.finished) {
      if (this.pendingClose !== undefined) {
        // no boundary is coming: the client cannot be sent a valid close
        this.pendingClose = undefined;
        this.options.client.destroy();
      }
      return;
    }
    if (this.clientCloseCode !== undefined) {
      // the upstream's answer to the client's close went to the client already
      this.end(this.clientCloseCode, 'client closed');
      this.options.client.end();
      return;
    }
    this.end(CLOSE_INTERNAL_ERROR, 'upstream closed');
    this.closeClient(CLOSE_INTERNAL_ERROR, 'upstream closed');
    this.options.upstream.destroy();
  }

  private end(code: number, reason: string): void {
    this.finished = true;
    this.options.onEnd(code, reason);
    const deadline = setTimeout(() => this.destroy(), CLOSE_WAIT_MS);
    deadline.unref();
    this.onGone(() => clearTimeout(deadline));
  }

  /** The client's close frame, at a frame boundary of the upstream→client stream. */
  private closeClient(code: number, reason: string): void {
    const client = this.options.client;
    if (!client.writable) return void client.destroy();
    if (this.clientCloseCode !== undefined) return void client.end();
    const frame = closeFrame(code, reason, false);
    if (this.toClient.atBoundary) return void client.end(frame);
    if (this.upstreamGone || this.options.upstream.readableEnded) return void client.destroy();
    // the rest of the frame under way is relayed first
    this.pendingClose = frame;
    this.toClient.haltAtBoundary = true;
  }

  /** 1000 to the upstream at a frame boundary of the client→upstream stream (masked, as a client sends). */
  private closeUpstream(): void {
    const upstream = this.options.upstream;
    if (!upstream.writable || this.clientCloseCode !== undefined) return void upstream.end();
    if (this.toUpstream.atBoundary) upstream.end(closeFrame(CLOSE_NORMAL, 'client gone', true));
    else upstream.destroy();
  }

  private maybeGone(): void {
    if (!this.gone) return;
    for (const listener of this.goneListeners.splice(0)) listener();
  }
}
