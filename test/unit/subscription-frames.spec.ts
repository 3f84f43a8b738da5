import { describe, expect, it } from 'vitest';
import { FrameScanner, acceptKey, closeFrame, type FrameScannerOptions } from '../../src/proxy/subscription-frames';

/** One RFC 6455 frame; `mask` (4 bytes) masks the payload as a client does. */
function frame(opcode: number, payload: Buffer, { fin = true, mask }: { fin?: boolean; mask?: Buffer } = {}): Buffer {
  const length = payload.length;
  const extended = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const header = Buffer.alloc(2 + extended + (mask === undefined ? 0 : 4));
  header[0] = (fin ? 0x80 : 0) | opcode;
  header[1] = (mask === undefined ? 0 : 0x80) | (extended === 0 ? length : extended === 2 ? 126 : 127);
  if (extended === 2) header.writeUInt16BE(length, 2);
  if (extended === 8) header.writeBigUInt64BE(BigInt(length), 2);
  if (mask === undefined) return Buffer.concat([header, payload]);
  mask.copy(header, 2 + extended);
  return Buffer.concat([header, Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]!))]);
}

const MASK = Buffer.from([0x12, 0x34, 0x56, 0x78]);
const text = (value: string) => Buffer.from(value, 'utf8');

/** Feeds `stream` in pieces of `size` bytes; returns what the scanner let through and its stop. */
function feed(options: FrameScannerOptions, stream: Buffer, size: number) {
  const scanner = new FrameScanner(options);
  const out: Buffer[] = [];
  for (let at = 0; at < stream.length; at += size) out.push(scanner.scan(stream.subarray(at, at + size)));
  return { forwarded: Buffer.concat(out), stopped: scanner.stopped, scanner };
}

describe('FrameScanner (raw WebSocket relay)', () => {
  const server = { masked: false, maxMessageBytes: 1000 };
  const client = { masked: true, maxMessageBytes: 1000 };

  it('forwards every byte of valid frames, whatever the chunking (headers split across chunks included)', () => {
    const stream = Buffer.concat([
      frame(0x1, text('hello')),
      frame(0x2, Buffer.alloc(300, 7)), // 16-bit length
      frame(0x9, text('ping')),
      frame(0x1, text('frag-1'), { fin: false }),
      frame(0xa, text('pong')), // a control frame between fragments
      frame(0x0, text('frag-2')),
    ]);
    for (const size of [1, 2, 3, 7, 13, 64, stream.length]) {
      const { forwarded, stopped, scanner } = feed(server, stream, size);
      expect(stopped).toBeUndefined();
      expect(forwarded.equals(stream)).toBe(true);
      expect(scanner.atBoundary).toBe(true);
    }
  });

  it('reads 64-bit lengths and masked client frames', () => {
    const big = frame(0x2, Buffer.alloc(70_000), { mask: MASK });
    const { forwarded, stopped } = feed({ masked: true, maxMessageBytes: 100_000 }, big, 4096);
    expect(stopped).toBeUndefined();
    expect(forwarded.length).toBe(big.length);
  });

  it('stops with 1009 at the fragment that takes a message over the limit, before any of its bytes', () => {
    const first = frame(0x2, Buffer.alloc(600), { fin: false, mask: MASK });
    const second = frame(0x0, Buffer.alloc(600), { mask: MASK });
    for (const size of [1, 5, 1000, 5000]) {
      const { forwarded, stopped } = feed(client, Buffer.concat([first, second]), size);
      expect(stopped).toMatchObject({ code: 1009 });
      expect(forwarded.equals(first)).toBe(true);
    }
    // the same bytes in two messages pass: the count starts again at each message
    const two = Buffer.concat([frame(0x2, Buffer.alloc(600), { mask: MASK }), frame(0x2, Buffer.alloc(600), { mask: MASK })]);
    expect(feed(client, two, 100).stopped).toBeUndefined();
  });

  it('asks at every new message (not every fragment or control frame) and drops the refused one', () => {
    let asked = 0;
    const options = { ...client, admitMessage: () => (++asked > 2 ? { code: 1008, reason: 'message rate limit' } : undefined) };
    const stream = Buffer.concat([
      frame(0x1, text('a'), { fin: false, mask: MASK }),
      frame(0x0, text('b'), { mask: MASK }),
      frame(0x9, text('ping'), { mask: MASK }),
      frame(0x1, text('c'), { mask: MASK }),
    ]);
    const third = frame(0x1, text('dropped'), { mask: MASK });
    const { forwarded, stopped } = feed(options, Buffer.concat([stream, third]), 3);
    expect(asked).toBe(3);
    expect(stopped).toMatchObject({ code: 1008 });
    expect(forwarded.equals(stream)).toBe(true);
  });

  it('refuses with 1002 what no relay leg may carry', () => {
    const cases: Array<[FrameScannerOptions, Buffer]> = [
      [client, frame(0x1, text('unmasked'))], // a client must mask
      [server, frame(0x1, text('masked'), { mask: MASK })], // a server must not
      [server, Buffer.from([0xc1, 0x00])], // RSV1: compression, never negotiated
      [server, frame(0x0, text('no message'))], // continuation without a start
      [server, Buffer.concat([frame(0x1, text('a'), { fin: false }), frame(0x1, text('b'))])], // a new message inside one
      [server, frame(0x3, text('reserved opcode'))],
      [server, frame(0x9, Buffer.alloc(126))], // control frame above 125 bytes
      [server, frame(0x9, text('x'), { fin: false })], // fragmented control frame
    ];
    for (const [options, stream] of cases) expect(feed(options, stream, 2).stopped).toMatchObject({ code: 1002 });
  });

  it('reads the code of a close frame (masked or not) and withholds it when asked to', () => {
    const seen: Array<number | undefined> = [];
    const close = frame(0x8, Buffer.from([0x0f, 0xa0, 0x62]), { mask: MASK }); // 4000 "b"
    const relayed = feed({ ...client, onClose: (code) => void seen.push(code) }, close, 64);
    expect(relayed.forwarded.equals(close)).toBe(true);
    const refused = feed({ ...server, onClose: () => ({ code: 1011, reason: 'upstream closed' }) }, frame(0x8, Buffer.alloc(2)), 64);
    expect(refused.forwarded.length).toBe(0);
    expect(refused.stopped).toMatchObject({ code: 1011 });
    expect(seen).toEqual([4000]);
  });

  it('halts at the next frame boundary when the relay must close, not inside a frame', () => {
    const scanner = new FrameScanner(server);
    const message = frame(0x2, Buffer.alloc(200));
    expect(scanner.scan(message.subarray(0, 50)).length).toBe(50);
    expect(scanner.atBoundary).toBe(false);
    scanner.haltAtBoundary = true;
    const rest = scanner.scan(Buffer.concat([message.subarray(50), frame(0x1, text('next'))]));
    expect(rest.length).toBe(message.length - 50);
    expect(scanner.stopped).toBeDefined();
  });

  it('writes close frames a ws peer accepts, and the handshake accept key of RFC 6455 §1.3', () => {
    const toClient = closeFrame(1008, 'message rate limit', false);
    expect(toClient[0]).toBe(0x88);
    expect(toClient[1]).toBe(2 + 18);
    expect(toClient.readUInt16BE(2)).toBe(1008);
    const toServer = closeFrame(1000, 'client gone', true);
    expect(toServer[1]! & 0x80).toBe(0x80);
    expect(toServer.readUInt16BE(6)).toBe(1000); // all-zero mask: the payload as it is
    expect(feed({ ...server }, toClient, 1).stopped).toBeUndefined();
    expect(feed({ ...client }, toServer, 1).stopped).toBeUndefined();
    expect(acceptKey('dGhlIHNhbXBsZSBub25jZQ==')).toBe('s3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
  });
});
