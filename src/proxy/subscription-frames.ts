import crypto from 'node:crypto';

/** RFC 6455 §7.4.1 close codes the relay sends or reads. */
export const CLOSE_NORMAL = 1000;
export const CLOSE_PROTOCOL_ERROR = 1002;
export const CLOSE_MESSAGE_TOO_BIG = 1009;
export const CLOSE_INTERNAL_ERROR = 1011;

/** Why a scanner stopped: the frame at the cut is not forwarded, the relay closes with `code`. */
export interface ScanStop {
  code: number;
  reason: string;
}

export interface FrameScannerOptions {
  /** frames from a client are masked (RFC 6455 §5.1), frames from a server never are */
  masked: boolean;
  /** a data message (all its fragments) above this many payload bytes stops the scan with 1009 */
  maxMessageBytes: number;
  /** asked at the first frame of every data message; false stops the scan (the message is dropped) */
  admitMessage?: () => ScanStop | undefined;
  /** a close frame arrived; return a stop to withhold it, undefined to forward it */
  onClose?: (code: number | undefined) => ScanStop | undefined;
}

const OPCODE_CONTINUATION = 0x0;
const OPCODE_CLOSE = 0x8;
/** the largest header: 2 bytes, an 8-byte length, a 4-byte mask key */
const MAX_HEADER = 14;
const EMPTY = Buffer.alloc(0);
/** the stop `haltAtBoundary` asked for (the relay sends its own close there) */
const HALTED: ScanStop = { code: 0, reason: 'halted at a frame boundary' };

/**
 * An incremental RFC 6455 frame-header scanner for a relay that forwards the bytes of a TCP (or
 * TLS) stream as they come, without parsing messages: it only follows frame boundaries. It keeps
 * a frame header that is split across chunks back until it is whole, so the relay is always able
 * to stop at a frame boundary and put a close frame of its own there. It checks what the relay
 * must enforce (the mask bit of the direction, no RSV bits (no extension is negotiated on either
 * leg), valid opcodes and fragmentation, control frames ≤ 125 bytes and unfragmented), sums a
 * fragmented message's payload for the size limit, and asks at every new message whether it may
 * pass (the message rate).
 */
export class FrameScanner {
  /** payload bytes of the current frame still to come */
  private remaining = 0;
  /** payload bytes of the current data message so far (all fragments) */
  private messageBytes = 0;
  private inMessage = false;
  /** a frame header split across chunks, kept back until it is whole */
  private held: Buffer | undefined;
  /** set when `scan` returned less than the whole stream: the relay closes with it */
  stopped: ScanStop | undefined;
  /** set by the relay when it must close: the scan stops at the next frame boundary */
  haltAtBoundary = false;

  constructor(private readonly options: FrameScannerOptions) {}

  /** true between frames: a frame the relay writes now keeps the stream valid */
  get atBoundary(): boolean {
    return this.remaining === 0;
  }

  /**
   * Scans the next chunk of the stream and returns the bytes to forward now: the chunk itself
   * in the common case, less when a header is incomplete or the scan stopped (`stopped`).
   */
  scan(chunk: Buffer): Buffer {
    if (this.stopped !== undefined) return EMPTY;
    let data = chunk;
    if (this.held !== undefined) {
      data = Buffer.concat([this.held, chunk]);
      this.held = undefined;
    }
    const length = data.length;
    if (this.remaining >= length) {
      this.remaining -= length;
      if (this.remaining === 0 && this.haltAtBoundary) this.stopped = HALTED;
      return data;
    }
    let offset = this.remaining;
    this.remaining = 0;
    while (offset < length) {
      if (this.haltAtBoundary) return this.stop(data, offset, HALTED);
      if (length - offset < 2) return this.hold(data, offset);
      const first = data[offset]!;
      const second = data[offset + 1]!;
      const short = second & 0x7f;
      const masked = (second & 0x80) !== 0;
      const headerLength = 2 + (short === 126 ? 2 : short === 127 ? 8 : 0) + (masked ? 4 : 0);
      if (length - offset < headerLength) return this.hold(data, offset);
      let payload = short;
      if (short === 126) payload = data.readUInt16BE(offset + 2);
      else if (short === 127) {
        const high = data.readUInt32BE(offset + 2);
        // above 2^53 is not a number we can count; far above any limit anyway
        payload = high >= 0x200000 ? Number.MAX_SAFE_INTEGER : high * 0x100000000 + data.readUInt32BE(offset + 6);
      }
      const problem = this.check(first, masked, payload, data, offset + headerLength);
      if (problem !== undefined) return this.stop(data, offset, problem);
      offset += headerLength + payload;
    }
    this.remaining = offset - length;
    if (this.remaining === 0 && this.haltAtBoundary) this.stopped = HALTED;
    return data;
  }

  private check(first: number, masked: boolean, payload: number, data: Buffer, payloadAt: number): ScanStop | undefined {
    const opcode = first & 0x0f;
    const fin = (first & 0x80) !== 0;
    if (masked !== this.options.masked) return { code: CLOSE_PROTOCOL_ERROR, reason: masked ? 'masked frame' : 'unmasked frame' };
    if ((first & 0x70) !== 0) return { code: CLOSE_PROTOCOL_ERROR, reason: 'reserved bits set' };
    if (opcode >= 0x8) {
      if (opcode > 0xa || !fin || payload > 125) return { code: CLOSE_PROTOCOL_ERROR, reason: 'invalid control frame' };
      if (opcode === OPCODE_CLOSE && this.options.onClose !== undefined) {
        return this.options.onClose(closeCodeOf(data, payloadAt, payload, masked));
      }
      return undefined;
    }
    if (opcode === OPCODE_CONTINUATION) {
      if (!this.inMessage) return { code: CLOSE_PROTOCOL_ERROR, reason: 'continuation without a message' };
    } else {
      if (opcode > 0x2 || this.inMessage) return { code: CLOSE_PROTOCOL_ERROR, reason: 'invalid data frame' };
      const refused = this.options.admitMessage?.();
      if (refused !== undefined) return refused;
      this.messageBytes = 0;
    }
    this.messageBytes += payload;
    if (this.messageBytes > this.options.maxMessageBytes) return { code: CLOSE_MESSAGE_TOO_BIG, reason: 'message too big' };
    this.inMessage = !fin;
    return undefined;
  }

  private hold(data: Buffer, offset: number): Buffer {
    // a copy: the rest of the chunk is forwarded and must not be kept alive by a few bytes
    this.held = Buffer.from(data.subarray(offset));
    if (this.held.length > MAX_HEADER) throw new Error('frame scanner held more than a header');
    return offset === 0 ? EMPTY : data.subarray(0, offset);
  }

  private stop(data: Buffer, offset: number, stop: ScanStop): Buffer {
    this.stopped = stop;
    return data.subarray(0, offset);
  }
}

/** The status code of a close frame, when its first two payload bytes are in this chunk. */
function closeCodeOf(data: Buffer, at: number, payload: number, masked: boolean): number | undefined {
  if (payload < 2 || at + 2 > data.length) return undefined;
  if (!masked) return data.readUInt16BE(at);
  return ((data[at]! ^ data[at - 4]!) << 8) | (data[at + 1]! ^ data[at - 3]!);
}

/**
 * A close frame written by the relay itself: unmasked toward a client, masked toward a server
 * (an all-zero key: the payload stays as it is, RFC 6455 allows any key).
 */
export function closeFrame(code: number, reason: string, masked: boolean): Buffer {
  const text = Buffer.from(reason.slice(0, 120), 'utf8').subarray(0, 123);
  const header = masked ? 6 : 2;
  const frame = Buffer.alloc(header + 2 + text.length);
  frame[0] = 0x80 | OPCODE_CLOSE;
  frame[1] = (masked ? 0x80 : 0) | (2 + text.length);
  frame.writeUInt16BE(code, header);
  text.copy(frame, header + 2);
  return frame;
}

const HANDSHAKE_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2). */
export function acceptKey(key: string): string {
  return crypto
    .createHash('sha1')
    .update(key + HANDSHAKE_GUID)
    .digest('base64');
}
