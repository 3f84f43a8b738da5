import { describe, expect, it } from 'vitest';
import {
  DependencyUnavailableError,
  dependencyFailureAsAppError,
  fromDatabaseCall,
  isDatabaseUnavailable,
} from '../../src/common/dependency-failure';

/** Shapes as they reach the edge from Prisma 7 on @prisma/adapter-pg (seen against a real PostgreSQL being stopped, cut and slowed). */
const prismaRaw = (cause: Record<string, unknown>) =>
  Object.assign(new Error('Raw query failed'), {
    name: 'PrismaClientKnownRequestError',
    code: 'P2010',
    clientVersion: '7.10.0',
    meta: { driverAdapterError: Object.assign(new Error('driver'), { name: 'DriverAdapterError', cause }) },
  });
const prismaCode = (code: string) =>
  Object.assign(new Error(code), { name: 'PrismaClientKnownRequestError', code, clientVersion: '7.10.0', meta: {} });

/** A socket error the pg adapter does not convert: Prisma makes it a known request error with the socket's code. */
const prismaSocket = (code: string) =>
  Object.assign(new Error(`Invalid \`prisma.$queryRaw()\` invocation:\n\nwrite ${code}`), {
    name: 'PrismaClientKnownRequestError',
    code,
    clientVersion: '7.10.0',
    meta: undefined,
  });

describe('database failure classification', () => {
  it.each([
    ['server shutting down (57P01)', prismaRaw({ kind: 'postgres', code: '57P01' })],
    ['statement_timeout (57014)', prismaRaw({ kind: 'postgres', code: '57014' })],
    ['cannot connect now (57P03)', prismaRaw({ kind: 'postgres', code: '57P03' })],
    ['serialization failure, retries exhausted', prismaRaw({ kind: 'TransactionWriteConflict' })],
    ['unreachable', prismaRaw({ kind: 'DatabaseNotReachable' })],
    ['transaction could not start in time (P2028)', prismaCode('P2028')],
    ['pool timeout (P2024)', prismaCode('P2024')],
    ['connection terminated', new Error('Connection terminated unexpectedly')],
    ['pool wait', new Error('timeout exceeded when trying to connect')],
    ['refused', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })],
    ['our transaction deadline', new DependencyUnavailableError('database', 'transaction exceeded 3000 ms')],
    ['wrapped', new Error('outer', { cause: prismaCode('P1001') })],
  ])('%s → 503 unavailable with Retry-After', (_, error) => {
    expect(isDatabaseUnavailable(error)).toBe(true);
    const mapped = dependencyFailureAsAppError(error);
    expect(mapped?.code).toBe('unavailable');
    expect(mapped?.options.headers?.['retry-after']).toMatch(/^\d+$/);
  });

  it.each([
    ['a missing table', prismaRaw({ kind: 'TableDoesNotExist', originalCode: '42P01' })],
    ['division by zero', prismaRaw({ kind: 'postgres', code: '22012' })],
    ['a unique violation', prismaCode('P2002')],
    ['a record not found', prismaCode('P2025')],
    ['a TypeError', new TypeError("Cannot read properties of undefined (reading 'id')")],
    ['a string', 'boom'],
  ])('%s stays a bug (500)', (_, error) => {
    expect(isDatabaseUnavailable(error)).toBe(false);
    expect(dependencyFailureAsAppError(error)).toBeUndefined();
  });

  describe('a socket error counts only when the database connection raised it', () => {
    /** What Node gives a socket that failed, with nothing that says whose socket it was. */
    const socketError = (code: string, syscall: string) =>
      Object.assign(new Error(code === 'ECONNRESET' ? 'aborted' : `${syscall} ${code}`), { code, syscall, errno: -1 });

    it.each([
      ["a client's request body after it hung up (ECONNRESET)", socketError('ECONNRESET', 'read')],
      ['an answer written to a client gone (EPIPE)', socketError('EPIPE', 'write')],
      ['an idle client timing out (ETIMEDOUT)', socketError('ETIMEDOUT', 'read')],
      ['the same wrapped by other code', new Error('stream failed', { cause: socketError('ECONNRESET', 'read') })],
      ['the same under another dependency', new DependencyUnavailableError('nats', 'gone', { cause: socketError('ECONNRESET', 'read') })],
    ])('%s is not the database (no 503)', (_, error) => {
      expect(isDatabaseUnavailable(error)).toBe(false);
      expect(dependencyFailureAsAppError(error)).toBeUndefined();
    });

    it.each([
      // what Prisma 7 on @prisma/adapter-pg makes of them (see dependency-failure-prisma.spec.ts)
      ['ECONNRESET from pg, through Prisma (the adapter: ConnectionClosed)', prismaRaw({ kind: 'ConnectionClosed' })],
      ['EPIPE from pg, through Prisma (rethrown by the adapter: the code on the Prisma error)', prismaSocket('EPIPE')],
      ['ECONNRESET without syscall, through Prisma (the same)', prismaSocket('ECONNRESET')],
      ['ETIMEDOUT without syscall, through Prisma (the same)', prismaSocket('ETIMEDOUT')],
      ['EPIPE ending a Prisma transaction', fromDatabaseCall(socketError('EPIPE', 'write'))],
      ['ECONNRESET from a prepared statement on the pool', fromDatabaseCall(socketError('ECONNRESET', 'read'))],
      ['EPIPE from a prepared statement on the pool', fromDatabaseCall(socketError('EPIPE', 'write'))],
    ])('%s is the database (503)', (_, error) => {
      expect(isDatabaseUnavailable(error)).toBe(true);
      expect(dependencyFailureAsAppError(error)?.code).toBe('unavailable');
    });

    it('fromDatabaseCall keeps what the database answered as it is', () => {
      const unique = Object.assign(new Error('duplicate key value'), { code: '23505', severity: 'ERROR' });
      expect(fromDatabaseCall(unique)).toBe(unique);
      expect(isDatabaseUnavailable(fromDatabaseCall(unique))).toBe(false);
      const wrapped = fromDatabaseCall(socketError('ECONNRESET', 'read')) as DependencyUnavailableError;
      expect(dependencyFailureAsAppError(wrapped)?.options.logReason).toBe('database: connection failed <- ECONNRESET');
    });
  });
});
