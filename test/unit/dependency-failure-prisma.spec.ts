import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { dependencyFailureAsAppError, isDatabaseUnavailable } from '../../src/common/dependency-failure';
import { PrismaService } from '../../src/database/prisma.service';
import { PrismaClient } from '../../src/generated/prisma/client';

/** What Node gives a write or read on a socket the peer dropped. */
const socketError = (code: string, syscall: string, errno: number) =>
  Object.assign(new Error(`${syscall} ${code}`), { code, syscall, errno });

/**
 * The shapes as they really reach the edge: the real Prisma client on the real pg adapter, over a
 * pool whose query fails the way pg's does when the database socket breaks (no server needed).
 */
describe('database socket errors through the real Prisma client and pg adapter', () => {
  const pool = new pg.Pool({ connectionString: 'postgresql://nobody@127.0.0.1:1/none', max: 1 });
  let failure: Error = new Error('unset');
  pool.query = (() => Promise.reject(failure)) as unknown as typeof pool.query;
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
  afterAll(() => prisma.$disconnect().catch(() => undefined));

  const caught = async (error: Error) => {
    failure = error;
    return prisma.$queryRaw`SELECT 1`.then(
      () => expect.unreachable('the query should fail'),
      (thrown: unknown) => thrown,
    );
  };

  it.each([
    ['EPIPE (not in the adapter list: rethrown as it is)', socketError('EPIPE', 'write', -32)],
    ['ECONNRESET (the adapter makes it ConnectionClosed)', socketError('ECONNRESET', 'read', -104)],
    ['ETIMEDOUT (the adapter makes it SocketTimeout)', socketError('ETIMEDOUT', 'read', -110)],
    ['ECONNRESET without syscall/errno (rethrown as it is)', Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })],
  ])('%s answers 503, not 500', async (_, error) => {
    const thrown = await caught(error);
    expect(isDatabaseUnavailable(thrown)).toBe(true);
    expect(dependencyFailureAsAppError(thrown)?.code).toBe('unavailable');
  });

  it('a unique violation through the same path stays a bug (500)', async () => {
    const thrown = await caught(
      Object.assign(new Error('duplicate key value violates unique constraint'), { code: '23505', severity: 'ERROR' }),
    );
    expect(isDatabaseUnavailable(thrown)).toBe(false);
  });

  it('EPIPE opening a transaction (Prisma rethrows the bare socket error) answers 503 through PrismaService', async () => {
    const service = new PrismaService('postgresql://nobody@127.0.0.1:1/none', 1, 500);
    const servicePool = (service as unknown as { pool: pg.Pool }).pool;
    servicePool.connect = (() => Promise.reject(socketError('EPIPE', 'write', -32))) as unknown as typeof servicePool.connect;
    try {
      const thrown = await service
        .$transaction(async (tx) => tx.$queryRaw`SELECT 1`)
        .then(
          () => expect.unreachable('the transaction should fail'),
          (error: unknown) => error,
        );
      expect(dependencyFailureAsAppError(thrown)?.code).toBe('unavailable');
    } finally {
      await service.$disconnect().catch(() => undefined);
    }
  });
});
