import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ARGON2_PARAMS, PasswordHasher } from '../../src/identity/password-hasher';
import { HASH_THREAD_NICE, HashWorkers } from '../../src/identity/hash-workers';

/** Nice value of each thread of this process, from /proc (Linux only). */
function threadNices(): number[] {
  return fs.readdirSync('/proc/self/task').map((tid) => {
    const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    // fields after the parenthesised name; nice is field 19 of stat(5)
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
  });
}

describe('argon2 on hashing threads of its own', () => {
  it('hashes and verifies off the event loop and outside libuv pool, on threads at a lower priority', async () => {
    const workers = new HashWorkers(2);
    const before = threadNices().filter((nice) => nice === HASH_THREAD_NICE).length;
    const [phc, other] = await Promise.all([workers.hash('correct horse battery', ARGON2_PARAMS), workers.hash('x', ARGON2_PARAMS)]);
    expect(phc).toMatch(/^\$argon2id\$/);
    expect(other).not.toBe(phc);
    expect(await workers.verify(phc, 'correct horse battery')).toBe(true);
    expect(await workers.verify(phc, 'wrong horse battery')).toBe(false);
    if (process.platform === 'linux') expect(threadNices().filter((nice) => nice === HASH_THREAD_NICE).length - before).toBe(2);
  });

  it('runs at most `size` hashes at once and queues the rest', async () => {
    const workers = new HashWorkers(1);
    const results = await Promise.all(Array.from({ length: 3 }, (_, i) => workers.hash(`password ${i}`, ARGON2_PARAMS)));
    expect(new Set(results).size).toBe(3);
  });

  it('a malformed hash is an error for that call only', async () => {
    const workers = new HashWorkers(1);
    await expect(workers.verify('not a phc string', 'x')).rejects.toThrow();
    expect(await workers.hash('still works', ARGON2_PARAMS)).toMatch(/^\$argon2id\$/);
  });

  it('a dummy hash that failed (a thread died) is made again: unknown accounts are not answered 500 from then on', async () => {
    const hasher = new PasswordHasher();
    const threads = (hasher as unknown as { threads: HashWorkers }).threads;
    const real = threads.hash.bind(threads);
    let failures = 1;
    threads.hash = (password, options) => (failures-- > 0 ? Promise.reject(new Error('hash worker exited')) : real(password, options));
    await expect(hasher.verifyDummy('a password')).rejects.toThrow('hash worker exited');
    await expect(hasher.verifyDummy('a password')).resolves.toBe(false);
  });

  it('a thread that dies under a verification is 503 unavailable, not a wrong password; the next one gets a fresh thread', async () => {
    const hasher = new PasswordHasher();
    const phc = await hasher.hash('a password for the thread test');
    const threads = (hasher as unknown as { threads: { idle: Array<{ worker: { terminate(): Promise<number> } }> } }).threads;
    const worker = threads.idle[0]!.worker;
    const pending = hasher.verify(phc, 'a password for the thread test');
    await new Promise((resolve) => setImmediate(resolve)); // the job is on the thread
    await worker.terminate();
    await expect(pending).rejects.toMatchObject({ code: 'unavailable' });
    expect(await hasher.verify(phc, 'a password for the thread test')).toBe(true);
    expect(await hasher.verify(phc, 'another password')).toBe(false);
  });
  it('ends its threads when the application shuts down: the job under way and the caller waiting fail (503), none starts again', async () => {
    const hasher = new PasswordHasher();
    const phc = await hasher.hash('a password for the shutdown test');
    const threads = (hasher as unknown as { threads: { all: Set<unknown> } }).threads;
    expect(threads.all.size).toBeGreaterThan(0);
    const underWay = Array.from({ length: 4 }, () =>
      hasher.verify(phc, 'a password for the shutdown test').catch((error: unknown) => error),
    );
    await new Promise((resolve) => setImmediate(resolve));
    await hasher.onApplicationShutdown();
    expect(threads.all.size).toBe(0);
    for (const outcome of await Promise.all(underWay)) expect(outcome).toMatchObject({ code: 'unavailable' });
    await expect(hasher.verify(phc, 'a password for the shutdown test')).rejects.toMatchObject({ code: 'unavailable' });
    // hashing (sign-up, reset) and the unknown-account dummy hash too: 503, never a 500
    await expect(hasher.hash('a new password')).rejects.toMatchObject({ code: 'unavailable' });
    await expect(hasher.verifyDummy('a password')).rejects.toMatchObject({ code: 'unavailable' });
    expect(threads.all.size).toBe(0);
  });
});
