import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitFor } from '../../support/process';

const BIN = '/usr/sbin/nats-server';

export interface PrivateNats {
  port: number;
  url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  destroy(): Promise<void>;
}

export function privateNatsAvailable(): boolean {
  return fs.existsSync(BIN);
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** A nats-server with JetStream of its own (own port, store in a temp dir that survives restarts). */
export async function startPrivateNats(): Promise<PrivateNats> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-fault-nats-'));
  const port = await freePort();
  let server: ChildProcess | undefined;
  const start = async () => {
    const child = spawn(BIN, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir, '-l', path.join(dir, 'nats.log')], {
      stdio: 'ignore',
    });
    server = child;
    await waitFor(
      async () => {
        if (child.exitCode !== null) {
          throw new Error(`nats-server exited: ${fs.readFileSync(path.join(dir, 'nats.log'), 'utf8').slice(-500)}`);
        }
        return listening(port);
      },
      15_000,
      50,
    );
  };
  const stop = async () => {
    const child = server;
    server = undefined;
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  };
  await start();
  return {
    port,
    url: `nats://127.0.0.1:${port}`,
    start,
    stop,
    async destroy() {
      await stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
