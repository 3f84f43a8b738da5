import path from 'node:path';
import 'reflect-metadata';
import { Module, type DynamicModule, type INestApplicationContext, type Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { CoreModule } from './app.module';
import { AuditTrailService } from './audit/audit-trail.service';
import { AuditModule } from './audit/audit.module';
import { AuditService } from './audit/audit.service';
import { AuthzModule } from './authz/authz.module';
import { BootstrapAdminService } from './authz/bootstrap-admin.service';
import { AppError } from './common/app-error';
import { ConfigError, loadConfig, type AppConfig } from './config/config';
import { DatabaseModule } from './database/database.module';
import { applyMigrations } from './database/migrator';
import { IdentityModule } from './identity/identity.module';
import { MessagingModule } from './messaging/messaging.module';
import { createLogger } from './observability/logger';
import { MetricsService } from './observability/metrics.service';
import { RetentionModule } from './retention/retention.module';
import { RetentionService } from './retention/retention.service';
import { SessionModule } from './session/session.module';
import { SigningKeyService } from './session/signing-key.service';

/**
 * Operator CLI (`node dist/cli.js <command>`, `npm run cli -- <command>`): each command says
 * what it did on stdout and exits non-zero on failure (1 failure, 64 usage, 78 bad configuration).
 * It reads the same environment as the server.
 */
const MIGRATIONS_DIR = path.resolve(__dirname, '..', 'prisma', 'migrations');

class UsageError extends Error {}

/** The modules the database commands use: the server's own services, without HTTP, gRPC or proxies. */
@Module({})
class CliModule {
  static register(config: AppConfig): DynamicModule {
    return {
      module: CliModule,
      imports: [
        CoreModule.register({ config, logger: createLogger('warn', process.stderr), metrics: new MetricsService() }),
        DatabaseModule,
        MessagingModule,
        AuditModule,
        IdentityModule,
        SessionModule,
        AuthzModule,
        RetentionModule,
      ],
    };
  }
}

function requireDatabase(config: AppConfig, command: string): void {
  if (config.DATABASE_URL === undefined) {
    throw new Error(`${command}: DATABASE_URL is not set (the embedded store belongs to the running server; point the CLI at PostgreSQL)`);
  }
}

/** Runs `work` with the services of a Nest context that never listens; closes it whatever happens. */
async function withServices<T>(config: AppConfig, work: (get: <S>(type: Type<S>) => S) => Promise<T>): Promise<T> {
  // the retention job would start its timer in this short-lived process: `prune` runs one round itself
  const context: INestApplicationContext = await NestFactory.createApplicationContext(
    CliModule.register({ ...config, RETENTION_INTERVAL: 0 }),
    {
      logger: false,
      abortOnError: false,
    },
  );
  try {
    return await work((type) => context.get(type, { strict: false }));
  } finally {
    await context.close();
  }
}

async function readPassword(): Promise<string> {
  if (process.stdin.isTTY) {
    throw new UsageError(
      'create-admin: pipe the password on stdin, e.g. `printf %s "$PASSWORD" | npm run cli -- create-admin admin@example.com`',
    );
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  // one trailing newline is the shell's, not the password's
  const password = Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
  if (password === '') throw new UsageError('create-admin: no password on stdin');
  return password;
}

interface Command {
  summary: string;
  usage?: string;
  run(config: AppConfig, args: string[]): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  'check-config': {
    summary: 'validate the environment as the server would at start',
    run(config) {
      process.stdout.write(
        `config ok: NODE_ENV=${config.NODE_ENV} PORT=${config.PORT} GRPC_PORT=${config.GRPC_PORT} ` +
          `database=${config.DATABASE_URL === undefined ? 'embedded' : 'postgresql'} nats=${config.NATS_URL === undefined ? 'off' : 'on'}\n`,
      );
      return Promise.resolve(0);
    },
  },
  migrate: {
    summary: 'apply pending migrations (advisory-locked; safe while replicas run)',
    async run(config) {
      requireDatabase(config, 'migrate');
      const applied = await applyMigrations(
        config.DATABASE_MIGRATION_URL ?? config.DATABASE_URL!,
        MIGRATIONS_DIR,
        (message) => process.stdout.write(`${message}\n`),
        config.DATABASE_URL,
      );
      process.stdout.write(
        applied.length === 0 ? 'migrate: nothing to apply\n' : `migrate: applied ${applied.length}: ${applied.join(', ')}\n`,
      );
      return 0;
    },
  },
  'create-admin': {
    summary: 'make a user (created if new) a platform admin; password on stdin',
    usage: 'create-admin <email>   (password on stdin)',
    async run(config, args) {
      requireDatabase(config, 'create-admin');
      const email = args[0];
      if (email === undefined || args.length > 1) throw new UsageError('usage: cli create-admin <email>   (password on stdin)');
      const password = await readPassword();
      const result = await withServices(config, (get) => get(BootstrapAdminService).createAdmin(email, password));
      process.stdout.write(
        `create-admin: ${result.userCreated ? 'created user' : 'existing user'} ${result.userId} <${email.trim().toLowerCase()}>; ` +
          `${result.granted ? 'granted platform_admin' : 'already platform_admin'}; ` +
          `${result.passwordSet ? 'password set' : 'password unchanged (the user has one)'}\n`,
      );
      return 0;
    },
  },
  'rotate-keys': {
    summary: 'rotate the token-signing key now (next key becomes active; audited)',
    async run(config) {
      requireDatabase(config, 'rotate-keys');
      const change = await withServices(config, (get) =>
        get(SigningKeyService).rotate((tx, rotated) =>
          get(AuditService).record(tx, {
            action: 'platform.keys.rotate',
            actor: { principalId: null, principalType: 'system' },
            target: { type: 'signing_key', id: rotated.activated },
            changes: { retired_kid: rotated.retired, via: 'cli' },
          }),
        ),
      );
      process.stdout.write(
        `rotate-keys: active kid ${change.activated}; retired kid ${change.retired} (published in JWKS until its tokens expire)\n`,
      );
      return 0;
    },
  },
  'audit-verify': {
    summary: 'recompute the audit hash chain; exit 1 at the first record that does not check',
    async run(config) {
      requireDatabase(config, 'audit-verify');
      const result = await withServices(config, (get) => get(AuditTrailService).verify());
      if (result.ok) {
        process.stdout.write(`audit-verify: ok, ${result.checked} records checked\n`);
        return 0;
      }
      process.stdout.write(`audit-verify: BROKEN at seq ${result.first_bad_seq} (${result.checked} records checked)\n`);
      return 1;
    },
  },
  prune: {
    summary: 'delete expired sessions, tokens, challenges, OIDC states and counters now (never the audit trail)',
    async run(config) {
      requireDatabase(config, 'prune');
      const result = await withServices(config, (get) => get(RetentionService).pruneOnce());
      if (result === null) {
        process.stdout.write('prune: another replica is pruning right now; nothing done\n');
        return 0;
      }
      const total = Object.values(result).reduce((sum, count) => sum + count, 0);
      const parts = Object.entries(result).map(([table, count]) => `${table}=${count}`);
      process.stdout.write(`prune: deleted ${total} rows older than RETENTION_PERIOD=${config.RETENTION_PERIOD}s: ${parts.join(' ')}\n`);
      return 0;
    },
  },
};

function usage(): string {
  return (
    [
      'usage: cli <command>',
      ...Object.entries(COMMANDS).map(([name, command]) => `  ${(command.usage ?? name).padEnd(14)}  ${command.summary}`),
    ].join('\n') + '\n'
  );
}

async function main(argv: string[]): Promise<number> {
  const name = argv[0];
  const command = name === undefined ? undefined : COMMANDS[name];
  if (command === undefined) {
    process.stderr.write(name === undefined ? usage() : `unknown command: ${name}\n${usage()}`);
    return 64;
  }
  let config: AppConfig;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      return 78;
    }
    throw error;
  }
  try {
    return await command.run(config, argv.slice(1));
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`${error.message}\n`);
      return 64;
    }
    if (error instanceof AppError) {
      process.stderr.write(`${name}: ${error.options.detail ?? error.code}\n`);
      return 1;
    }
    throw error;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
