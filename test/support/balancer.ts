import http from 'node:http';
import net from 'node:net';

export interface Backend {
  name: string;
  host: string;
  port: number;
}

interface BackendState extends Backend {
  ready: boolean;
  /** when `ready` last turned false (ms since epoch) */
  downSince?: number;
  stopPolling: () => void;
}

export interface Balancer {
  port: number;
  url: string;
  /** joins the rotation once its /ready answers 200 */
  add(backend: Backend): void;
  remove(name: string): void;
  isReady(name: string): boolean;
  /** when the backend was last taken out of rotation, if it is out */
  downSince(name: string): number | undefined;
  /** connections handed to each backend so far (removed ones included) */
  connections(): Record<string, number>;
  /** client connections that no backend could take */
  readonly refused: number;
  close(): Promise<void>;
}

/**
 * A small round-robin TCP balancer standing in for Swarm's load balancing in tests. Each
 * backend's `/ready` is polled every `pollMs` on a fresh connection; only backends whose last
 * answer was 200 get new connections (a new backend is out until its first 200). A refused
 * connect takes the backend out and the client connection is tried on the next one: nothing
 * was sent yet, so that retry is always safe. Established connections are never moved or cut.
 */
export async function startBalancer(backends: Backend[], options: { pollMs?: number } = {}): Promise<Balancer> {
  const pollMs = options.pollMs ?? 100;
  const states = new Map<string, BackendState>();
  const history: Record<string, number> = {};
  const sockets = new Set<net.Socket>();
  let refused = 0;
  let cursor = 0;
  let closed = false;

  const markDown = (state: BackendState) => {
    if (state.ready) state.downSince = Date.now();
    state.ready = false;
  };

  function poll(state: BackendState): () => void {
    let timer: NodeJS.Timeout | undefined;
    let stopped = false;
    const once = () => {
      let finished = false;
      const done = () => {
        if (finished) return;
        finished = true;
        next();
      };
      const request = http.get({ host: state.host, port: state.port, path: '/ready', agent: false, timeout: 1000 }, (response) => {
        response.resume();
        if (response.statusCode === 200) {
          state.ready = true;
          state.downSince = undefined;
        } else {
          markDown(state);
        }
        response.on('end', done).on('error', done);
      });
      // a slow answer says nothing either way (a busy replica is not a stopping one);
      // a refused or reset connection does
      request.on('timeout', () => request.destroy(new Error('poll timeout')));
      request.on('error', (error: NodeJS.ErrnoException) => {
        if (error.message !== 'poll timeout') markDown(state);
        done();
      });
    };
    const next = () => {
      if (!stopped) timer = setTimeout(once, pollMs);
    };
    once();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }

  const add = (backend: Backend) => {
    const state: BackendState = { ...backend, ready: false, stopPolling: () => undefined };
    states.set(backend.name, state);
    state.stopPolling = poll(state);
  };

  const pick = (tried: Set<BackendState>): BackendState | undefined => {
    const ready = [...states.values()].filter((state) => state.ready && !tried.has(state));
    if (ready.length === 0) return undefined;
    cursor = (cursor + 1) % 1_000_000;
    return ready[cursor % ready.length];
  };

  const server = net.createServer((client) => {
    sockets.add(client);
    client.pause();
    let upstream: net.Socket | undefined;
    const tried = new Set<BackendState>();
    const cleanup = () => {
      client.destroy();
      upstream?.destroy();
      sockets.delete(client);
      if (upstream !== undefined) sockets.delete(upstream);
    };
    client.on('error', cleanup).on('close', cleanup);

    const attempt = () => {
      const target = pick(tried);
      if (target === undefined || closed) {
        refused += 1;
        cleanup();
        return;
      }
      tried.add(target);
      const socket = net.connect({ host: target.host, port: target.port });
      upstream = socket;
      sockets.add(socket);
      const onConnectError = () => {
        sockets.delete(socket);
        socket.destroy();
        markDown(target);
        if (!client.destroyed) attempt();
      };
      socket.once('error', onConnectError);
      socket.once('connect', () => {
        socket.removeListener('error', onConnectError);
        history[target.name] = (history[target.name] ?? 0) + 1;
        socket.on('error', cleanup).on('close', cleanup);
        client.pipe(socket);
        socket.pipe(client);
        client.resume();
      });
    };
    attempt();
  });

  for (const backend of backends) add(backend);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;

  return {
    port,
    url: `http://127.0.0.1:${port}`,
    add,
    remove(name) {
      states.get(name)?.stopPolling();
      states.delete(name);
    },
    isReady: (name) => states.get(name)?.ready === true,
    downSince: (name) => states.get(name)?.downSince,
    connections: () => ({ ...history }),
    get refused() {
      return refused;
    },
    close: () =>
      new Promise<void>((resolve) => {
        closed = true;
        for (const state of states.values()) state.stopPolling();
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
