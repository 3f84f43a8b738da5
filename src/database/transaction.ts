import type { Prisma } from '../generated/prisma/client';

/** A client usable both inside and outside a transaction. */
export type Db = Prisma.TransactionClient;

/** Prisma's unique-constraint violation. */
export function isUniqueViolation(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === 'P2002';
}
