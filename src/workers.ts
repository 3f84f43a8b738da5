import cluster, { type Worker } from 'node:cluster';
import os from 'node:os';
import type { Logger } from 'pino';
import type { AppConfig } from './config/config';
import { serveReplicaMetrics } from './observability/replica-metrics';

/** What a worker tells the primary once it serves (main.ts). */
export const WORKER_STARTED = 'gatehouse:worker-started';
const RESTART_DELAY_MS = 1000;
/** Set for the first worker only: it opens the port before the application is built. */
export const EARLY_LISTENER_ENV = 'GATEHOUSE_EARLY_LISTENER';

/**
 * The primary of a replica with WORKERS > 1 (node:cluster): it serves nothing itself. The
 * first worker starts alone (migrations, the bootstrap admin and the routing seed happen once),
 * then the others; the HTTP and gRPC ports are shared, connections spread over the workers.
 * Each worker is a full Gatehouse with its own NATS subscriptions, so revocations, authorization
 * and routing changes reach every process as they reach every replica. A worker that dies is
 * replaced; SIGTERM is passed to every worker, which drains as a single process does.
 */
export async function superviseWorkers(config: AppConfig, logger: Logger): Promise<void> {
  serveReplicaMetrics();
  const execArgv = workerExecArgv(process.execArgv, config.WORKERS, process.constrainedMemory(), os.totalmem());
  if (execArgv !== process.execArgv) logger.info({ worker_node_flags: execArgv }, 'workers share the memory limit');
  cluster.setupPrimary({ execArgv });
  let stopping = false;

  const fork = (first = false) =>
    new Promise<Worker>((resolve, reject) => {
      // only the first worker answers /health while it starts (main.ts): a replacement that got
      // connections while starting would refuse them on a replica that serves
      const worker = cluster.fork(first ? { [EARLY_LISTENER_ENV]: '1' } : {});
      const onMessage = (message: { type?: string }) => {
        if (message?.type !== WORKER_STARTED) return;
        worker.off('message', onMessage);
        worker.off('exit', onEarlyExit);
        resolve(worker);
      };
      const onEarlyExit = (code: number | null) => reject(new Error(`worker ${worker.id} exited with ${code} while starting`));
      worker.on('message', onMessage);
      worker.once('exit', onEarlyExit);
      worker.once('exit', (code, signal) => {
        if (stopping) return;
        logger.error({ worker: worker.id, code, signal }, 'worker exited; starting a replacement');
        setTimeout(() => {
          if (!stopping) fork().catch((error: unknown) => logger.error({ err: error }, 'replacement worker failed to start'));
        }, RESTART_DELAY_MS).unref();
      });
    });

  try {
    await fork(true);
    await Promise.all(Array.from({ length: config.WORKERS - 1 }, () => fork()));
  } catch (error) {
    stopping = true;
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    throw error;
  }
  logger.info({ workers: config.WORKERS, pid: process.pid }, 'gatehouse replica serving with workers');

  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down the workers');
    const workers = Object.values(cluster.workers ?? {}).filter((worker): worker is Worker => worker !== undefined);
    let left = workers.length;
    const done = () => logger.flush(() => process.exit(0));
    if (left === 0) done();
    for (const worker of workers) {
      worker.once('exit', () => {
        left -= 1;
        if (left === 0) done();
      });
      worker.process.kill('SIGTERM');
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/**
 * The node flags of each worker: the primary's (npm start's), plus, under a memory limit (a
 * container's cgroup), a cap on each worker's old generation at its share of half the limit.
 * V8 sizes every process's heap from the whole limit, and with `--heap-growing-percent` (npm
 * start) a heap fills more of it before a full collection: N workers each sized for the whole
 * limit would together outgrow it. An explicit `--max-old-space-size` is kept as given.
 */
export function workerExecArgv(execArgv: string[], workers: number, constrainedBytes: number, totalBytes: number): string[] {
  const limited = constrainedBytes > 0 && constrainedBytes < totalBytes;
  if (!limited || workers <= 1 || execArgv.some((flag) => flag.startsWith('--max-old-space-size'))) return execArgv;
  const share = Math.floor(constrainedBytes / 1048576 / 2 / workers);
  return [...execArgv, `--max-old-space-size=${Math.max(WORKER_OLD_SPACE_FLOOR_MIB, share)}`];
}

/** Below this an old generation does not hold Gatehouse's live data (~75 MB under load). */
const WORKER_OLD_SPACE_FLOOR_MIB = 96;
