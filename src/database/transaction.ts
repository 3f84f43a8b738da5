import type { Prisma } from '../generated/prisma/client';

/** A client usable both inside and outside a transaction. */
export type Db = Prisma.TransactionClient;

/** Prisma's unique-constraint violation. */
export function isUniqueViolation(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === 'P2002';
}

/** Work queued by `beforeCommit`, per open interactive transaction (PrismaService.$transaction). */
const commitHooks = new WeakMap<object, Array<() => Promise<void>>>();

/**
 * Queues `work` to run as the last statements of the interactive transaction `tx`, after its
 * callback has returned and right before the commit (in the order queued). Returns false when
 * `tx` is not such a transaction (the client itself, a batch): run `work` yourself then.
 */
export function beforeCommit(tx: Db, work: () => Promise<void>): boolean {
  const hooks = commitHooks.get(tx);
  if (hooks === undefined) return false;
  hooks.push(work);
  return true;
}

/** PrismaService.$transaction: runs the callback, then what it queued with `beforeCommit`. */
export async function withCommitHooks<R>(tx: Db, work: (tx: Db) => Promise<R>): Promise<R> {
  const hooks: Array<() => Promise<void>> = [];
  commitHooks.set(tx, hooks);
  try {
    const result = await work(tx);
    // a hook may queue more
    for (let index = 0; index < hooks.length; index += 1) await hooks[index]!();
    return result;
  } finally {
    commitHooks.delete(tx);
  }
}
