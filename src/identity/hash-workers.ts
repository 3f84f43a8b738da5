import { Worker } from 'node:worker_threads';
import type { Options } from '@node-rs/argon2';

/**
 * Nice value of the hashing threads. argon2 is pure CPU; at the default bound (one hash per CPU)
 * the hashes alone fill every core, and the event loop and PostgreSQL, which serve signed-in
 * traffic, then wait for the scheduler behind them (GET /v1/auth/me p99 3.8 s during a
 * 200-sign-in burst, measured as time spent in socket writes: the loop was preempted).
 * Niced, the hashes get every idle cycle and give way to the rest (docs/decisions.md).
 */
export const HASH_THREAD_NICE = 10;

/**
 * The worker's code, evaluated (not a file: the same code runs from dist/ and from the
 * TypeScript sources under test). It lowers its own thread's priority, then hashes and verifies
 * synchronously, one job at a time.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const argon2 = require(workerData.argon2);
try {
  // on Linux a thread id names just that thread for setpriority(2)
  const tid = Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop());
  require('node:os').setPriority(tid, workerData.nice);
} catch {}
parentPort.on('message', (job) => {
  try {
    const value = job.op === 'hash' ? argon2.hashSync(job.password, job.options) : argon2.verifySync(job.phc, job.password);
    parentPort.postMessage({ id: job.id, value });
  } catch (error) {
    parentPort.postMessage({ id: job.id, error: error instanceof Error ? error.message : String(error) });
  }
});
`;

/** A hashing thread failed (crashed or exited) under a job: the job was never decided. */
export class HashThreadFailure extends Error {}

type Job = { op: 'hash'; password: string; options: Options } | { op: 'verify'; phc: string; password: string };

interface Pending {
  resolve(value: string | boolean): void;
  reject(error: Error): void;
}

interface HashWorker {
  worker: Worker;
  pending: Map<number, Pending>;
  dead: boolean;
}

/**
 * argon2 on threads of its own, outside libuv's pool (which stays free for the crypto, DNS and
 * file work of other requests) and at a lower CPU priority. One job per thread at a time; the
 * threads start on first use, at most `size` of them, and never keep the process alive.
 */
export class HashWorkers {
  private readonly idle: HashWorker[] = [];
  private readonly waiting: Array<{ resolve(worker: HashWorker): void; reject(error: Error): void }> = [];
  private readonly all = new Set<HashWorker>();
  private nextId = 0;
  private stopped = false;

  constructor(private readonly size: number) {}

  hash(password: string, options: Options): Promise<string> {
    return this.run({ op: 'hash', password, options }) as Promise<string>;
  }

  verify(phc: string, password: string): Promise<boolean> {
    return this.run({ op: 'verify', phc, password }) as Promise<boolean>;
  }

  private async run(job: Job): Promise<string | boolean> {
    const hashWorker = await this.take();
    try {
      return await new Promise<string | boolean>((resolve, reject) => {
        const id = this.nextId++;
        hashWorker.pending.set(id, { resolve, reject });
        hashWorker.worker.postMessage({ ...job, id });
      });
    } finally {
      this.give(hashWorker);
    }
  }

  /**
   * Ends every thread (at application shutdown): jobs under way and callers waiting for a
   * thread fail with HashThreadFailure (503 to a caller), and no thread starts again.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    const stopped = new HashThreadFailure('hash threads stopped');
    for (const waiter of this.waiting.splice(0)) waiter.reject(stopped);
    await Promise.all([...this.all].map((hashWorker) => hashWorker.worker.terminate()));
  }

  private take(): Promise<HashWorker> {
    if (this.stopped) return Promise.reject(new HashThreadFailure('hash threads stopped'));
    const ready = this.idle.pop();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.all.size < this.size) return Promise.resolve(this.start());
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  private give(hashWorker: HashWorker): void {
    if (hashWorker.dead) return; // it died; a new one starts when needed
    const next = this.waiting.shift();
    if (next !== undefined) next.resolve(hashWorker);
    else this.idle.push(hashWorker);
  }

  private start(): HashWorker {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { argon2: require.resolve('@node-rs/argon2'), nice: HASH_THREAD_NICE },
    });
    worker.unref();
    const hashWorker: HashWorker = { worker, pending: new Map(), dead: false };
    this.all.add(hashWorker);
    worker.on('message', (reply: { id: number; value?: string | boolean; error?: string }) => {
      const pending = hashWorker.pending.get(reply.id);
      if (pending === undefined) return;
      hashWorker.pending.delete(reply.id);
      if (reply.error !== undefined) pending.reject(new Error(reply.error));
      else pending.resolve(reply.value!);
    });
    const fail = (error: Error) => {
      for (const pending of hashWorker.pending.values()) pending.reject(error);
      hashWorker.pending.clear();
    };
    worker.on('error', (error) => fail(new HashThreadFailure(`hash worker failed: ${error.message}`)));
    worker.on('exit', () => {
      hashWorker.dead = true;
      this.all.delete(hashWorker);
      fail(new HashThreadFailure('hash worker exited'));
      const index = this.idle.indexOf(hashWorker);
      if (index !== -1) this.idle.splice(index, 1);
      // a caller waiting for a thread gets a fresh one
      const next = this.stopped ? undefined : this.waiting.shift();
      if (next !== undefined) next.resolve(this.start());
    });
    return hashWorker;
  }
}
