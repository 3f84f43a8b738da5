import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { Inject, Injectable, Optional, type OnApplicationShutdown } from '@nestjs/common';
import { AppError } from '../common/app-error';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { parseOptions, type Algorithm } from '@node-rs/argon2';
import { HashThreadFailure, HashWorkers } from './hash-workers';
import { normalizePassword } from './password-policy';

/** argon2id, OWASP minimum (m=19 MiB, t=2, p=1). Raising these re-hashes on the next sign-in. */
export const ARGON2_PARAMS = {
  // Algorithm.Argon2id; a const enum, which isolated-module builds cannot inline
  algorithm: 2 as Algorithm,
  memoryCost: 19456,
  timeCost: 2,
  parallelism: 1,
};

/** The longest a hash may wait for a slot (CONTRACT §4) before the request is 503. */
const MAX_WAIT_MS = 1000;

function overloaded(): AppError {
  return new AppError('unavailable', { headers: { 'retry-after': '1' }, logReason: 'password hasher overloaded' });
}

/**
 * At most PASSWORD_HASH_CONCURRENCY hashes at once and PASSWORD_HASH_QUEUE waiting, none longer
 * than 1 s; beyond that 503 `unavailable` at once (CONTRACT §4), so a sign-in burst cannot make
 * every request wait for the whole queue or starve libuv's pool of threads for ES256 work.
 */
class HashGate {
  private running = 0;
  private readonly waiting: Array<{ resolve: () => void; timer: NodeJS.Timeout }> = [];
  /** sign-ins holding a ticket: from before the abuse limiter's database work until their hash ends */
  private ticketed = 0;

  constructor(
    private readonly concurrency: number,
    private readonly queue: number,
  ) {}

  /**
   * A sign-in's place before any work: at most concurrency + queue at once, the rest 503 at once
   * (they would only wait in the database pool and then in the hash queue).
   */
  ticket(): () => void {
    if (this.ticketed >= this.concurrency + this.queue) throw overloaded();
    this.ticketed++;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.ticketed--;
    };
  }

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.running < this.concurrency) {
      this.running++;
    } else {
      if (this.waiting.length >= this.queue) throw overloaded();
      await new Promise<void>((resolve, reject) => {
        const entry = {
          resolve,
          timer: setTimeout(() => {
            this.waiting.splice(this.waiting.indexOf(entry), 1);
            reject(overloaded());
          }, MAX_WAIT_MS),
        };
        this.waiting.push(entry);
      });
    }
    try {
      return await work();
    } finally {
      // the slot goes to the next waiter as it is, or is freed
      const next = this.waiting.shift();
      if (next === undefined) this.running--;
      else {
        clearTimeout(next.timer);
        next.resolve();
      }
    }
  }
}

/**
 * A job on a hashing thread: a thread that failed or was stopped decided nothing, so the caller
 * gets 503 `unavailable` (Retry-After), never a 500 or a wrong password.
 */
function onThread<T>(job: Promise<T>): Promise<T> {
  return job.catch((error: unknown) => {
    if (error instanceof HashThreadFailure) {
      throw new AppError('unavailable', { headers: { 'retry-after': '1' }, logReason: error.message });
    }
    throw error;
  });
}

@Injectable()
export class PasswordHasher implements OnApplicationShutdown {
  /** Unknown accounts are checked against this, so timing does not reveal which emails exist. */
  private dummyHash: Promise<string> | undefined;
  private readonly gate: HashGate;
  private readonly threads: HashWorkers;

  constructor(@Optional() @Inject(APP_CONFIG) config?: AppConfig) {
    // per replica, divided among its processes (CONTRACT §9, WORKERS)
    const workers = config?.WORKERS ?? 1;
    const concurrency = Math.max(1, Math.floor((config?.PASSWORD_HASH_CONCURRENCY ?? os.availableParallelism()) / workers));
    this.gate = new HashGate(
      config === undefined ? 1_000_000 : concurrency,
      Math.floor((config?.PASSWORD_HASH_QUEUE ?? 1_000_000) / workers),
    );
    this.threads = new HashWorkers(concurrency);
  }

  /**
   * Reserves a sign-in's place in the hasher's bound before the abuse limiter and the account
   * lookup run; throws 503 `unavailable` at once when the bound is full. Call the returned
   * release when the sign-in is over.
   */
  reserve(): () => void {
    return this.gate.ticket();
  }

  /** Throws 503 `unavailable` (Retry-After) when the hasher is overloaded or its thread failed. */
  hash(password: string): Promise<string> {
    return this.gate.run(() => onThread(this.threads.hash(normalizePassword(password), ARGON2_PARAMS)));
  }

  /**
   * Throws 503 `unavailable` (Retry-After) when the hasher is overloaded or its thread failed
   * (nothing was decided, so it must not count as a wrong password); false for a wrong password
   * or a stored hash argon2 cannot read.
   */
  verify(phc: string, password: string): Promise<boolean> {
    return this.gate.run(() =>
      onThread(this.threads.verify(phc, normalizePassword(password))).catch((error: unknown) => {
        if (error instanceof AppError) throw error;
        return false;
      }),
    );
  }

  /** The hashing threads end with the application (a test process boots many). */
  async onApplicationShutdown(): Promise<void> {
    await this.threads.stop();
  }

  /** Same work as a real verification, always false. */
  async verifyDummy(password: string): Promise<false> {
    if (this.dummyHash === undefined) {
      // through the gate like every hash, so the first unknown account cannot take a thread beyond the bound
      const made = this.gate.run(() => onThread(this.threads.hash(randomBytes(24).toString('base64'), ARGON2_PARAMS)));
      this.dummyHash = made;
      // a failed hash (a hashing thread died) is not kept: every unknown account would answer 500
      // from then on, and known ones 401, which tells them apart
      made.catch(() => {
        if (this.dummyHash === made) this.dummyHash = undefined;
      });
    }
    await this.verify(await this.dummyHash, password);
    return false;
  }

  needsRehash(phc: string): boolean {
    try {
      const options = parseOptions(phc);
      return (
        options.algorithm !== ARGON2_PARAMS.algorithm ||
        options.memoryCost < ARGON2_PARAMS.memoryCost ||
        options.timeCost < ARGON2_PARAMS.timeCost ||
        options.parallelism < ARGON2_PARAMS.parallelism
      );
    } catch {
      return true;
    }
  }
}
