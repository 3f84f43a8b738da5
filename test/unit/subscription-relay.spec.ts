import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SocketRelay } from '../../src/proxy/subscription-relay';

/** Both ends of one loopback TCP connection; `halfOpen`: the far end keeps writing after a FIN. */
async function socketPair(halfOpen = false): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer({ allowHalfOpen: halfOpen });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const dialed = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: halfOpen });
  const near = await accepted;
  await new Promise((resolve) => (dialed.connecting ? dialed.once('connect', resolve) : resolve(undefined)));
  server.close();
  return [near, dialed];
}

/** Everything a peer receives, and when it hangs up. */
function collect(socket: net.Socket): { bytes: () => Buffer; closed: Promise<void> } {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', () => undefined);
  return { bytes: () => Buffer.concat(chunks), closed: new Promise((resolve) => socket.once('close', () => resolve())) };
}

const until = async (condition: () => boolean) => {
  for (let i = 0; i < 200 && !condition(); i += 1) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(condition()).toBe(true);
};

/** An unmasked binary frame with a 16-bit length, as an upstream sends it. */
function serverFrame(length: number, fill: number): Buffer {
  const frame = Buffer.alloc(4 + length, fill);
  frame[0] = 0x82;
  frame[1] = 126;
  frame.writeUInt16BE(length, 2);
  return frame;
}

describe('SocketRelay (raw WebSocket relay)', () => {
  const sockets: net.Socket[] = [];
  afterEach(() => {
    for (const socket of sockets.splice(0)) socket.destroy();
  });

  async function relayed() {
    const [clientEnd, clientPeer] = await socketPair();
    // as a ws server does, the upstream finishes the frame under way after the relay's close
    const [upstreamEnd, upstreamPeer] = await socketPair(true);
    sockets.push(clientEnd, clientPeer, upstreamEnd, upstreamPeer);
    const ends: Array<[number, string]> = [];
    const relay = new SocketRelay({
      client: clientEnd,
      clientHead: Buffer.alloc(0),
      upstream: upstreamEnd,
      upstreamHead: Buffer.alloc(0),
      maxMessageBytes: 1 << 20,
      onEnd: (code, reason) => ends.push([code, reason]),
    });
    relay.start();
    return { relay, ends, client: collect(clientPeer), upstream: collect(upstreamPeer), clientPeer, upstreamPeer };
  }

  it('puts a policy close after the frame under way, never inside it, and tells the upstream 1000 (masked)', async () => {
    const { relay, ends, client, upstream, upstreamPeer } = await relayed();
    const frame = serverFrame(1000, 7);
    upstreamPeer.write(frame.subarray(0, 300));
    await until(() => client.bytes().length === 300);
    relay.close(1008, 'session revoked');
    expect(ends).toEqual([[1008, 'session revoked']]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(client.bytes().length).toBe(300); // no close frame inside the frame
    upstreamPeer.write(Buffer.concat([frame.subarray(300), serverFrame(10, 9)]));
    await client.closed;
    const got = client.bytes();
    // the rest of the frame, then the close (unmasked, 1008), and not the frame after it
    expect(got.subarray(0, frame.length).equals(frame)).toBe(true);
    const close = got.subarray(frame.length);
    expect(close[0]).toBe(0x88);
    expect(close[1]! & 0x80).toBe(0);
    expect(close.readUInt16BE(2)).toBe(1008);
    expect(close.subarray(4).toString()).toBe('session revoked');
    const toUpstream = upstream.bytes();
    expect(toUpstream[0]).toBe(0x88);
    expect(toUpstream[1]! & 0x80).toBe(0x80);
    expect(toUpstream.readUInt16BE(6)).toBe(1000);
    expect(ends.length).toBe(1);
  });

  it('drops the client without a close frame when the upstream dies inside a frame', async () => {
    const { ends, client, upstreamPeer } = await relayed();
    upstreamPeer.write(serverFrame(1000, 7).subarray(0, 100));
    await until(() => client.bytes().length === 100);
    upstreamPeer.destroy();
    await client.closed;
    expect(client.bytes().length).toBe(100);
    expect(ends).toEqual([[1011, 'upstream closed']]);
  });

  it('closes the client with 1011 at a boundary when the upstream hangs up between frames', async () => {
    const { ends, client, upstreamPeer } = await relayed();
    const frame = serverFrame(20, 1);
    upstreamPeer.end(frame);
    await client.closed;
    const got = client.bytes();
    expect(got.subarray(0, frame.length).equals(frame)).toBe(true);
    expect(got.readUInt16BE(frame.length + 2)).toBe(1011);
    expect(ends).toEqual([[1011, 'upstream closed']]);
  });

  it("ends the relay (1000) and the client's connection when the upstream does not answer the client's close within 5 s", async () => {
    const { ends, client, upstream, clientPeer } = await relayed();
    // a masked close 1000 (zero mask key), which the upstream receives and never answers
    const clientClose = Buffer.from([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]);
    clientPeer.write(clientClose);
    await until(() => upstream.bytes().length >= clientClose.length);
    expect(upstream.bytes().subarray(0, clientClose.length).equals(clientClose)).toBe(true);
    expect(ends).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 5200));
    expect(ends).toEqual([[1000, 'upstream did not answer the close']]);
    // the client already sent its close: its connection is ended, not answered with a second close
    await client.closed;
  }, 15_000);
});
