import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from '../generated/prisma/client';

/** The Prisma client on the pg driver adapter; built by DatabaseModule once the database is up. */
export class PrismaService extends PrismaClient {
  constructor(
    readonly databaseUrl: string,
    poolSize: number,
  ) {
    super({
      adapter: new PrismaPg({ connectionString: databaseUrl, max: poolSize, connectionTimeoutMillis: 10_000 }),
      // bursts (parallel sign-ins, refresh races) queue for a connection rather than fail
      transactionOptions: { maxWait: 10_000, timeout: 15_000 },
    });
  }

  /** Readiness probe: one round trip, bounded in time. */
  async ping(timeoutMs = 1000): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      });
      return await Promise.race([this.$queryRaw`SELECT 1`.then(() => true), timeout]);
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }
}
