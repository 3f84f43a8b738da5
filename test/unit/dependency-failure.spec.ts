import { describe, expect, it } from 'vitest';
import { DependencyUnavailableError, dependencyFailureAsAppError, isDatabaseUnavailable } from '../../src/common/dependency-failure';

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
});
