import path from 'node:path';
import { ConfigError, loadConfig, type AppConfig } from './config/config';
import { applyMigrations } from './database/migrator';

/**
 * Operator CLI (`node dist/cli.js <command>`, `npm run cli -- <command>`): each command says
 * what it did on stdout and exits non-zero on failure (78 for bad configuration).
 */
const MIGRATIONS_DIR = path.resolve(__dirname, '..', 'prisma', 'migrations');

const COMMANDS: Record<string, { summary: string; run(config: AppConfig): Promise<void> }> = {
  'check-config': {
    summary: 'validate the environment as the server would at start',
    run(config) {
      process.stdout.write(
        `config ok: NODE_ENV=${config.NODE_ENV} PORT=${config.PORT} GRPC_PORT=${config.GRPC_PORT} ` +
          `database=${config.DATABASE_URL === undefined ? 'embedded' : 'postgresql'} nats=${config.NATS_URL === undefined ? 'off' : 'on'}\n`,
      );
      return Promise.resolve();
    },
  },
  migrate: {
    summary: 'apply pending migrations (advisory-locked; safe while replicas run)',
    async run(config) {
      if (config.DATABASE_URL === undefined) {
        throw new Error('migrate: DATABASE_URL is not set (the embedded store migrates itself at start)');
      }
      const applied = await applyMigrations(config.DATABASE_URL, MIGRATIONS_DIR, (message) => process.stdout.write(`${message}\n`));
      process.stdout.write(
        applied.length === 0 ? 'migrate: nothing to apply\n' : `migrate: applied ${applied.length}: ${applied.join(', ')}\n`,
      );
    },
  },
};

function usage(): string {
  return (
    ['usage: cli <command>', ...Object.entries(COMMANDS).map(([name, command]) => `  ${name.padEnd(14)}${command.summary}`)].join('\n') +
    '\n'
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
  await command.run(config);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
