import net from 'node:net';

export interface TcpProxy {
  port: number;
  /** refuse new connections and cut the open ones (the target looks unreachable) */
  cut(): void;
  /** accept again */
  restore(): void;
  /** delay every chunk, both ways, by `ms` (0 = none); order is kept */
  setLatency(ms: number): void;
  /** connections currently relayed */
  readonly open: number;
  close(): Promise<void>;
}

/** A loopback TCP relay to `target`, for making a dependency unreachable or slow mid-test. */
export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  let open = true;
  let latencyMs = 0;
  let pairs = 0;

  // Each chunk waits the same fixed delay, so timers fire in arrival order.
  const relay = (from: net.Socket, to: net.Socket) => {
    from.on('data', (chunk: Buffer) => {
      if (latencyMs === 0) {
        if (!to.destroyed) to.write(chunk);
        return;
      }
      setTimeout(() => {
        if (!to.destroyed) to.write(chunk);
      }, latencyMs);
    });
  };

  const server = net.createServer((client) => {
    if (!open) {
      client.destroy();
      return;
    }
    const upstream = net.connect({ host: targetHost, port: targetPort });
    sockets.add(client);
    sockets.add(upstream);
    pairs += 1;
    relay(client, upstream);
    relay(upstream, client);
    let closed = false;
    const cleanup = () => {
      if (!closed) pairs -= 1;
      closed = true;
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', cleanup).on('close', cleanup);
    upstream.on('error', cleanup).on('close', cleanup);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    cut() {
      open = false;
      for (const socket of sockets) socket.destroy();
    },
    restore() {
      open = true;
    },
    setLatency(ms) {
      latencyMs = ms;
    },
    get open() {
      return pairs;
    },
    close: () =>
      new Promise<void>((resolve) => {
        open = false;
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
