import path from 'node:path';
import { Inject, Module, type OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { LOGGER } from '../observability/logger';
import { sharedDevMasterKey } from './dev-master-key';
import { startEmbeddedStore } from './embedded-store';
import { applyMigrations, roleOf } from './migrator';
import { PrismaService } from './prisma.service';
import { waitForDatabase } from './wait-for-database';

export const MIGRATIONS_DIR = path.resolve(__dirname, '..', '..', 'prisma', 'migrations');

/** The embedded store's handle, when DATABASE_URL is unset. */
class DatabaseRuntime {
  constructor(
    readonly url: string,
    readonly embedded: boolean,
    readonly stopEmbedded: () => Promise<void>,
  ) {}
}

@Module({
  providers: [
    {
      provide: DatabaseRuntime,
      inject: [APP_CONFIG, LOGGER],
      useFactory: async (config: AppConfig, logger: Logger) => {
        let runtime: DatabaseRuntime;
        if (config.DATABASE_URL !== undefined) {
          runtime = new DatabaseRuntime(config.DATABASE_URL, false, () => Promise.resolve());
          await waitForDatabase(runtime.url, logger);
        } else {
          const started = Date.now();
          const store = await startEmbeddedStore(config.dataDir);
          logger.info({ data_dir: config.dataDir, ms: Date.now() - started }, 'embedded database started');
          runtime = new DatabaseRuntime(store.url, true, () => store.stop());
        }
        if (
          !runtime.embedded &&
          config.NODE_ENV === 'production' &&
          roleOf(config.DATABASE_MIGRATION_URL ?? runtime.url) === roleOf(runtime.url)
        ) {
          logger.warn(
            'DATABASE_URL and DATABASE_MIGRATION_URL use the same role: the serving role owns audit_records and could disable its append-only trigger (README "Database roles")',
          );
        }
        if (config.MIGRATE_ON_START) {
          const migrationUrl = runtime.embedded ? runtime.url : (config.DATABASE_MIGRATION_URL ?? runtime.url);
          const applied = await applyMigrations(migrationUrl, MIGRATIONS_DIR, (message) => logger.info(message), runtime.url);
          logger.info({ applied }, applied.length > 0 ? 'migrations applied' : 'database schema up to date');
        }
        if (config.masterKeyGenerated && !runtime.embedded) {
          // Mutated before any provider that seals or opens secrets is built (they depend on this one).
          config.MASTER_KEY = await sharedDevMasterKey(runtime.url, config.MASTER_KEY);
          logger.warn('MASTER_KEY is not set: using a development key shared through the database (never in production)');
        }
        return runtime;
      },
    },
    {
      provide: PrismaService,
      inject: [DatabaseRuntime, APP_CONFIG],
      // The embedded store serves one connection at a time, so it gets a pool of one.
      useFactory: (runtime: DatabaseRuntime, config: AppConfig) =>
        new PrismaService(runtime.url, runtime.embedded ? 1 : 10, config.DB_TIMEOUT_MS, runtime.embedded),
    },
  ],
  exports: [PrismaService],
})
export class DatabaseModule implements OnApplicationShutdown {
  constructor(
    private readonly prisma: PrismaService,
    @Inject(DatabaseRuntime) private readonly runtime: DatabaseRuntime,
  ) {}

  async onApplicationShutdown(): Promise<void> {
    await this.prisma.$disconnect();
    await this.runtime.stopEmbedded();
  }
}
