import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');
const MAIN = path.join(ROOT, 'dist', 'main.js');

/**
 * The node flags of `npm start` (package.json under `root`; the image's CMD repeats them): the
 * tests that start Gatehouse as a process run it as production does, so a flag a new Node
 * release no longer knows fails them.
 */
export function productionNodeArgs(root = ROOT): string[] {
  const start = (
    JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: { start: string } }
  ).scripts.start.split(' ');
  return start.slice(1, start.indexOf('dist/main.js'));
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address() as net.AddressInfo;
      server.close(() => resolve(address.port));
    });
  });
}

export interface GatehouseProcess {
  url: string;
  port: number;
  grpcPort: number;
  dataDir: string;
  child: ChildProcess;
  logs(): string;
  /** resolves with the exit code (null when killed by a signal) */
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts the built Gatehouse (`dist/main.js`) as a separate process and waits until /health
 * says it has started (it answers earlier, with `starting: true`).
 */
export async function spawnGatehouse(
  env: Record<string, string | undefined>,
  name = 'gh',
  options: {
    startTimeoutMs?: number;
    /** false: resolve once /health answers at all (still starting) */
    untilStarted?: boolean;
    /** an HTTPS listener (TLS_CERT_FILE): /health is asked with this fetch (CA, client certificate) */
    https?: { fetch: (url: string, init: { signal: AbortSignal }) => Promise<{ status: number; json(): Promise<unknown> }> };
  } = {},
): Promise<GatehouseProcess> {
  if (!fs.existsSync(MAIN)) throw new Error('dist/main.js missing: run `npm run build` first (npm test does)');
  const port = await freePort();
  const grpcPort = await freePort();
  const dataDir = env.DATA_DIR ?? fs.mkdtempSync(path.join(os.tmpdir(), `gh-${name}-`));
  const childEnv: Record<string, string> = {};
  for (const [key, value] of Object.entries({
    PATH: process.env.PATH,
    NODE_ENV: 'test',
    PORT: String(port),
    GRPC_PORT: String(grpcPort),
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    DATA_DIR: dataDir,
    LOG_LEVEL: 'info',
    SHUTDOWN_DRAIN_MS: '0',
    // CPU on the shared test machine is scarce: a busy moment must not turn into 503s in suites
    // that are not about faults (test/fault sets its own, shorter deadline)
    DB_TIMEOUT_MS: '10000',
    ...env,
  })) {
    if (value !== undefined) childEnv[key] = value;
  }
  const child = spawn(process.execPath, [...productionNodeArgs(), MAIN], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let done = false;
  void exited.then(() => (done = true));
  const url = `${options.https === undefined ? 'http' : 'https'}://127.0.0.1:${port}`;
  const ask = options.https?.fetch ?? fetch;
  const startTimeoutMs = options.startTimeoutMs ?? 60_000;
  const deadline = Date.now() + startTimeoutMs;
  for (;;) {
    if (done) throw new Error(`${name} exited before /health: ${output.slice(-500)}`);
    try {
      const response = await ask(`${url}/health`, { signal: AbortSignal.timeout(1000) });
      // /health answers from the first moment; `starting` is gone once the application serves
      if (
        response.status === 200 &&
        (options.untilStarted === false || ((await response.json()) as { starting?: boolean }).starting !== true)
      ) {
        break;
      }
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${name}: no /health within ${startTimeoutMs / 1000} s: ${output.slice(-500)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    url,
    port,
    grpcPort,
    dataDir,
    child,
    logs: () => output,
    exited,
    async stop(signal = 'SIGTERM') {
      if (!done) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Polls `check` until it returns true or the deadline passes; returns the elapsed ms or throws. */
export async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs = 5000, everyMs = 25): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
