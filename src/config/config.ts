import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { configSchema, type RawConfig } from './config.schema';

export interface AppConfig extends Omit<
  RawConfig,
  | 'PUBLIC_URL'
  | 'MASTER_KEY'
  | 'MASTER_KEY_PREVIOUS'
  | 'DATABASE_PASSWORD'
  | 'DATABASE_MIGRATION_PASSWORD'
  | 'WORKERS'
  | 'ADMIN_MFA_REQUIRED'
> {
  PUBLIC_URL: string;
  /** processes serving this replica: WORKERS, else the CPUs in production (when NATS is configured), else 1 */
  WORKERS: number;
  ADMIN_MFA_REQUIRED: boolean;
  MASTER_KEY: Buffer;
  /** keys that still open sealed data until a re-seal moved it to MASTER_KEY */
  MASTER_KEY_PREVIOUS: Buffer[];
  /** true when MASTER_KEY was generated into DATA_DIR (development only). */
  masterKeyGenerated: boolean;
  /** absolute path of DATA_DIR */
  dataDir: string;
}

export const APP_CONFIG = Symbol('APP_CONFIG');

/** Thrown for bad configuration; main.ts prints `message` as the one line and exits non-zero. */
export class ConfigError extends Error {}

const FILE_SUFFIX = '_FILE';

/** Every variable may be given as NAME_FILE=/path (Docker Swarm secrets); the file wins over nothing, NAME wins over NAME_FILE. */
function readFileVariables(env: NodeJS.ProcessEnv): Record<string, string | undefined> {
  const known = Object.keys(configSchema.shape);
  const values: Record<string, string | undefined> = {};
  for (const name of known) {
    const direct = env[name];
    const file = env[name + FILE_SUFFIX];
    if (direct !== undefined && direct !== '') {
      values[name] = direct;
    } else if (file !== undefined && file !== '') {
      try {
        values[name] = fs.readFileSync(file, 'utf8').trim();
      } catch {
        throw new ConfigError(`config: ${name}_FILE: cannot read ${file}`);
      }
    }
  }
  return values;
}

function loadOrCreateDevMasterKey(dataDir: string): Buffer {
  const keyFile = path.join(dataDir, 'master.key');
  if (fs.existsSync(keyFile)) {
    const key = Buffer.from(fs.readFileSync(keyFile, 'utf8').trim(), 'base64');
    if (key.length !== 32) throw new ConfigError(`config: MASTER_KEY: ${keyFile} is not a 32-byte base64 key`);
    return key;
  }
  fs.mkdirSync(dataDir, { recursive: true });
  const key = randomBytes(32);
  fs.writeFileSync(keyFile, key.toString('base64') + '\n', { mode: 0o600 });
  return key;
}

/** DATABASE_PASSWORD (usually DATABASE_PASSWORD_FILE, a Swarm secret) goes into DATABASE_URL's userinfo. */
function withDatabasePassword(
  databaseUrl: string | undefined,
  password: string | undefined,
  names = { password: 'DATABASE_PASSWORD', url: 'DATABASE_URL' },
): string | undefined {
  if (password === undefined) return databaseUrl;
  if (databaseUrl === undefined) throw new ConfigError(`config: ${names.password}: needs ${names.url} (host, user and database)`);
  const url = new URL(databaseUrl);
  // two sources for one password would leave an operator guessing which one is used
  if (url.password !== '') throw new ConfigError(`config: ${names.password}: ${names.url} already carries a password`);
  url.password = encodeURIComponent(password);
  return url.toString();
}

/**
 * DATABASE_CA_FILE becomes the URL's `sslrootcert`, so every connection (pool, migrations, the
 * readiness probe) verifies PostgreSQL's certificate against it; without an explicit `sslmode`
 * that is `verify-full` (certificate and host name), and a weaker mode is refused.
 */
function withDatabaseCa(databaseUrl: string | undefined, caFile: string | undefined): string | undefined {
  if (caFile === undefined) return databaseUrl;
  if (databaseUrl === undefined) throw new ConfigError('config: DATABASE_CA_FILE: needs DATABASE_URL');
  try {
    fs.accessSync(caFile, fs.constants.R_OK);
  } catch {
    throw new ConfigError(`config: DATABASE_CA_FILE: cannot read ${caFile}`);
  }
  const url = new URL(databaseUrl);
  const mode = url.searchParams.get('sslmode') ?? 'verify-full';
  if (mode !== 'verify-full' && mode !== 'verify-ca') {
    throw new ConfigError(`config: DATABASE_CA_FILE: DATABASE_URL has sslmode=${mode}; use verify-full (or verify-ca) with a CA`);
  }
  url.searchParams.set('sslmode', mode);
  url.searchParams.set('sslrootcert', caFile);
  return url.toString();
}

/** The directory must exist and be readable; its files are checked when the mail templates load. */
function checkMailTemplatesDir(dir: string | undefined): void {
  if (dir === undefined) return;
  try {
    fs.accessSync(dir, fs.constants.R_OK | fs.constants.X_OK);
    if (!fs.statSync(dir).isDirectory()) throw new Error('not a directory');
  } catch {
    throw new ConfigError(`config: MAIL_TEMPLATES_DIR: ${dir} is not a readable directory`);
  }
}

/** NATS credentials come as a .creds file or as user + password, never both; their files must be readable at start. */
function checkNatsSecurity(raw: Pick<RawConfig, 'NATS_CREDS_FILE' | 'NATS_USER' | 'NATS_PASSWORD' | 'NATS_TLS_CA_FILE'>): void {
  if ((raw.NATS_USER === undefined) !== (raw.NATS_PASSWORD === undefined)) {
    throw new ConfigError('config: NATS_PASSWORD: NATS_USER and NATS_PASSWORD go together');
  }
  if (raw.NATS_CREDS_FILE !== undefined && raw.NATS_USER !== undefined) {
    throw new ConfigError('config: NATS_CREDS_FILE: give either NATS_CREDS_FILE or NATS_USER + NATS_PASSWORD, not both');
  }
  requireReadable(raw, ['NATS_CREDS_FILE', 'NATS_TLS_CA_FILE']);
}

/** Each of these file variables that is set names a file this process can read; else one line naming it. */
function requireReadable<Name extends string>(raw: Partial<Record<Name, string>>, names: readonly Name[]): void {
  for (const name of names) {
    const file = raw[name];
    if (file === undefined) continue;
    try {
      fs.accessSync(file, fs.constants.R_OK);
    } catch {
      throw new ConfigError(`config: ${name}: cannot read ${file}`);
    }
  }
}

/** §13: upstream mTLS needs the CA, the client certificate and its key together, all readable. */
function checkUpstreamTls(raw: Pick<RawConfig, 'UPSTREAM_TLS_CA_FILE' | 'UPSTREAM_TLS_CERT_FILE' | 'UPSTREAM_TLS_KEY_FILE'>): void {
  const names = ['UPSTREAM_TLS_CA_FILE', 'UPSTREAM_TLS_CERT_FILE', 'UPSTREAM_TLS_KEY_FILE'] as const;
  const given = names.filter((name) => raw[name] !== undefined);
  if (given.length === 0) return;
  const missing = names.find((name) => raw[name] === undefined);
  if (missing !== undefined) throw new ConfigError(`config: ${missing}: upstream mTLS needs ${names.join(', ')} together`);
  requireReadable(raw, names);
}

/** §13: our own TLS listener needs certificate and key together; client certificates need it. */
function checkServerTls(raw: Pick<RawConfig, 'TLS_CERT_FILE' | 'TLS_KEY_FILE' | 'TLS_CLIENT_CA_FILE' | 'TLS_CLIENT_CERT_REQUIRED'>): void {
  if ((raw.TLS_CERT_FILE === undefined) !== (raw.TLS_KEY_FILE === undefined)) {
    throw new ConfigError('config: TLS_KEY_FILE: TLS_CERT_FILE and TLS_KEY_FILE go together');
  }
  if (raw.TLS_CLIENT_CA_FILE !== undefined && raw.TLS_CERT_FILE === undefined) {
    throw new ConfigError('config: TLS_CLIENT_CA_FILE: client certificates need TLS_CERT_FILE and TLS_KEY_FILE (Gatehouse serving HTTPS)');
  }
  if (raw.TLS_CLIENT_CERT_REQUIRED && raw.TLS_CLIENT_CA_FILE === undefined) {
    throw new ConfigError('config: TLS_CLIENT_CERT_REQUIRED: needs TLS_CLIENT_CA_FILE');
  }
  requireReadable(raw, ['TLS_CERT_FILE', 'TLS_KEY_FILE', 'TLS_CLIENT_CA_FILE']);
}

/**
 * CONTRACT §2: the CPUs available in production, else 1; more than one needs NATS (each process
 * hears revocations, authorization and routing changes there) and PostgreSQL (the embedded store
 * serves one process). An explicit WORKERS above 1 without them is refused; the production
 * default falls back to 1 without NATS, so a single-node production start keeps working.
 */
function resolveWorkers(raw: Pick<RawConfig, 'WORKERS' | 'NODE_ENV' | 'NATS_URL' | 'DATABASE_URL'>): number {
  const shared = raw.NATS_URL !== undefined && raw.DATABASE_URL !== undefined;
  if (raw.WORKERS === undefined) return raw.NODE_ENV === 'production' && shared ? os.availableParallelism() : 1;
  if (raw.WORKERS > 1 && raw.NATS_URL === undefined) throw new ConfigError('config: WORKERS: more than 1 needs NATS_URL');
  if (raw.WORKERS > 1 && raw.DATABASE_URL === undefined) {
    throw new ConfigError('config: WORKERS: more than 1 needs DATABASE_URL (the embedded store serves one process)');
  }
  return raw.WORKERS;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const parsed = configSchema.safeParse(readFileVariables(env));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const name = String(issue?.path[0] ?? 'environment');
    throw new ConfigError(`config: ${name}: ${issue?.message ?? 'invalid'}`);
  }
  const { DATABASE_PASSWORD, DATABASE_MIGRATION_PASSWORD, ...raw } = parsed.data;
  const databaseUrl = withDatabaseCa(withDatabasePassword(raw.DATABASE_URL, DATABASE_PASSWORD), raw.DATABASE_CA_FILE);
  if (raw.DATABASE_MIGRATION_URL !== undefined && raw.DATABASE_URL === undefined) {
    // the embedded store has one role (see README "Database roles")
    throw new ConfigError('config: DATABASE_MIGRATION_URL: needs DATABASE_URL (the embedded store has a single role)');
  }
  // without its own URL, migrations use DATABASE_URL (already carrying the CA)
  const migrationUrl =
    raw.DATABASE_MIGRATION_URL === undefined && DATABASE_MIGRATION_PASSWORD === undefined
      ? databaseUrl
      : withDatabaseCa(
          withDatabasePassword(raw.DATABASE_MIGRATION_URL, DATABASE_MIGRATION_PASSWORD, {
            password: 'DATABASE_MIGRATION_PASSWORD',
            url: 'DATABASE_MIGRATION_URL',
          }),
          raw.DATABASE_CA_FILE,
        );
  const dataDir = path.resolve(raw.DATA_DIR);
  if (raw.NODE_ENV === 'production' && raw.MASTER_KEY === undefined) {
    throw new ConfigError('config: MASTER_KEY: required when NODE_ENV=production');
  }
  // its strength is checked against the password policy by identity/bootstrap-admin-password.ts
  if ((raw.BOOTSTRAP_ADMIN_EMAIL === undefined) !== (raw.BOOTSTRAP_ADMIN_PASSWORD === undefined)) {
    throw new ConfigError('config: BOOTSTRAP_ADMIN_PASSWORD: BOOTSTRAP_ADMIN_EMAIL and BOOTSTRAP_ADMIN_PASSWORD go together');
  }
  checkNatsSecurity(raw);
  checkUpstreamTls(raw);
  checkServerTls(raw);
  const workers = resolveWorkers(raw);
  checkMailTemplatesDir(raw.MAIL_TEMPLATES_DIR);
  const masterKeyGenerated = raw.MASTER_KEY === undefined;
  const masterKey = raw.MASTER_KEY === undefined ? loadOrCreateDevMasterKey(dataDir) : Buffer.from(raw.MASTER_KEY, 'base64');
  const publicUrl = (raw.PUBLIC_URL ?? `http://localhost:${raw.PORT}`).replace(/\/+$/, '');
  const previousMasterKeys = (raw.MASTER_KEY_PREVIOUS ?? '')
    .split(',')
    .filter((key) => key.trim() !== '')
    .map((key) => Buffer.from(key.trim(), 'base64'));
  const adminMfaRequired = raw.ADMIN_MFA_REQUIRED ?? raw.NODE_ENV === 'production';
  return {
    ...raw,
    ADMIN_MFA_REQUIRED: adminMfaRequired,
    DATABASE_URL: databaseUrl,
    DATABASE_MIGRATION_URL: migrationUrl,
    PUBLIC_URL: publicUrl,
    MASTER_KEY: masterKey,
    WORKERS: workers,
    MASTER_KEY_PREVIOUS: previousMasterKeys,
    masterKeyGenerated,
    dataDir,
  };
}
