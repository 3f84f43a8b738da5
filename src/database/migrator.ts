import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { PrismaPg } from '@prisma/adapter-pg';
import {
  bindMigrationAwareSqlAdapterFactory,
  ColumnTypeEnum,
  type SqlDriverAdapter,
  type SqlMigrationAwareDriverAdapterFactory,
} from '@prisma/driver-adapter-utils';
import type { MigrationList, SchemaEngine } from '@prisma/schema-engine-wasm/schema_engine_bg';
import pg from 'pg';

/**
 * Applies `prisma/migrations/*` with Prisma's WebAssembly schema engine over the pg driver
 * adapter (the native schema engine behind `prisma migrate deploy` cannot be downloaded here).
 * Rows land in the standard `_prisma_migrations` table, so `prisma migrate deploy` stays
 * compatible with databases migrated by this code and vice versa.
 */

/** Key of the session-level advisory lock taken around applying migrations ("GATE"). Not Prisma's own 72707369. */
const MIGRATION_LOCK_KEY = 0x47415445;

const FILTERS = { externalTables: [] as string[], externalEnums: [] as string[] };
const POSTGRES_DATAMODEL = 'datasource db {\n  provider = "postgresql"\n}\n';
const BG_MODULE = '@prisma/schema-engine-wasm/schema_engine_bg';

type BgModule = typeof import('@prisma/schema-engine-wasm/schema_engine_bg');
type SchemaEngineClass = typeof SchemaEngine;

/** The bits of the WebAssembly global we use (lib "ES2023" without "DOM" does not declare it). */
interface WasmApi {
  compile(bytes: Uint8Array): Promise<object>;
  instantiate(module: object, imports: Record<string, Record<string, unknown>>): Promise<{ exports: Record<string, unknown> }>;
}
const WebAssemblyApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

let engineClass: Promise<SchemaEngineClass> | undefined;

/**
 * Loads and instantiates the schema engine's wasm, once per process. The package's main entry
 * does `import * as wasm from "./x.wasm"`, which Node 20 cannot load, so we take its
 * wasm-bindgen glue (`schema_engine_bg.js`, ESM) and instantiate the .wasm ourselves.
 * `import()` stays a real dynamic import in the CJS output (module "nodenext"), which loads ESM.
 */
function loadSchemaEngine(): Promise<SchemaEngineClass> {
  engineClass ??= instantiate().catch((error: unknown) => {
    engineClass = undefined;
    throw new Error(`cannot load the Prisma schema engine (wasm): ${messageOf(error)}`);
  });
  return engineClass;
}

async function instantiate(): Promise<SchemaEngineClass> {
  // The glue reports Rust panics through this global; it must exist before any call.
  (globalThis as { PRISMA_WASM_PANIC_REGISTRY?: unknown }).PRISMA_WASM_PANIC_REGISTRY = panicRegistry;

  const bg: BgModule = await import('@prisma/schema-engine-wasm/schema_engine_bg');
  const wasmPath = path.join(path.dirname(require.resolve(BG_MODULE)), 'schema_engine_bg.wasm');
  const module = await WebAssemblyApi.compile(await readFile(wasmPath));

  // Same imports as the glue module, except that the engine's timers (10 s timeouts it leaves
  // behind after each call) must not keep the process alive.
  const imports: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(bg)) {
    imports[name] = name.startsWith('__wbg_setTimeout_') ? unrefSetTimeout : value;
  }
  const instance = await WebAssemblyApi.instantiate(module, { './schema_engine_bg.js': imports });
  bg.__wbg_set_wasm(instance.exports);
  (instance.exports.__wbindgen_start as () => void)();
  return bg.SchemaEngine;
}

function unrefSetTimeout(callback: () => void, ms: number): NodeJS.Timeout {
  const timer = setTimeout(callback, ms >>> 0);
  timer.unref();
  return timer;
}

/** Where the wasm glue writes a Rust panic's message (`global.PRISMA_WASM_PANIC_REGISTRY`). */
class PanicRegistry {
  private message = '';
  get(): string {
    return this.message;
  }
  set_message(value: string): void {
    this.message = value;
  }
  clear(): void {
    this.message = '';
  }
}
const panicRegistry = new PanicRegistry();

/**
 * A readable one-paragraph message out of whatever the engine threw. Engine errors are
 * `Error`s (`name` "SchemaConnectorError", sometimes a Prisma `code` such as P3009) whose
 * message ends in a Rust span trace ("   0: sql_schema_connector::..."), which we drop.
 */
function messageOf(error: unknown): string {
  const cause = driverCause(error);
  if (cause !== undefined) {
    const record = cause as Record<string, unknown>;
    const text = [record.originalMessage, record.message, record.kind].find((v) => typeof v === 'string' && v !== '');
    return typeof text === 'string' ? text : JSON.stringify(cause);
  }
  let message: string;
  let code: unknown;
  if (error instanceof Error) {
    message = error.message;
    code = (error as { code?: unknown }).code;
  } else if (error !== null && typeof error === 'object') {
    const record = error as Record<string, unknown>;
    message = typeof record.message === 'string' ? record.message : JSON.stringify(error);
    code = record.code;
  } else {
    message = String(error);
  }
  const trace = message.search(/\n\s+0: /);
  if (trace !== -1) message = message.slice(0, trace);
  message = message.replace(/^external connector error\n/, '').trim();
  return typeof code === 'string' && code !== '' ? `${code}: ${message}` : message;
}

/**
 * The engine logs JSON lines (tracing events). Keep the message of those worth an operator's
 * attention ("Applying `<name>`", warnings, errors); `null` drops the line.
 */
function engineLogLine(line: string): string | null {
  let event: { level?: unknown; fields?: { message?: unknown } };
  try {
    event = JSON.parse(line) as typeof event;
  } catch {
    return line.trim() === '' ? null : `schema engine: ${line.trim()}`;
  }
  const message = typeof event.fields?.message === 'string' ? event.fields.message : line.trim();
  const level = typeof event.level === 'string' ? event.level.toUpperCase() : 'INFO';
  if (level === 'WARN' || level === 'ERROR') return `schema engine ${level.toLowerCase()}: ${message}`;
  if (level === 'INFO' && message.startsWith('Applying ')) return `schema engine: ${message}`;
  return null;
}

async function readMigrations(migrationsDir: string): Promise<MigrationList> {
  const baseDir = path.resolve(migrationsDir);
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(baseDir, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') entries = [];
    else throw error;
  }
  const names = entries
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
  const migrationDirectories: MigrationList['migrationDirectories'] = [];
  for (const name of names) {
    const file = path.join(baseDir, name, 'migration.sql');
    let content: string;
    try {
      content = await readFile(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue; // not a migration folder
      throw error;
    }
    migrationDirectories.push({ path: name, migrationFile: { path: 'migration.sql', content: { tag: 'ok', value: content } } });
  }
  const lockfile = await readFile(path.join(baseDir, 'migration_lock.toml'), 'utf8').catch(() => null);
  return {
    baseDir,
    lockfile: { path: 'migration_lock.toml', content: lockfile },
    shadowDbInitScript: '',
    migrationDirectories,
  };
}

/** Runs `fn` with a fresh engine bound to `factory`; frees the engine afterwards. */
async function withEngine<T>(
  factory: SqlMigrationAwareDriverAdapterFactory,
  log: (msg: string) => void,
  fn: (engine: SchemaEngine) => Promise<T>,
): Promise<T> {
  const SchemaEngineClass = await loadSchemaEngine();
  const bound = bindMigrationAwareSqlAdapterFactory(factory);
  let engine: SchemaEngine | undefined;
  try {
    // `new` already connects and queries the server version.
    engine = await SchemaEngineClass.new(
      { datamodels: [['schema.prisma', POSTGRES_DATAMODEL]] },
      (line: string) => {
        const message = engineLogLine(line);
        if (message !== null) log(message);
      },
      bound,
    );
    return await fn(engine);
  } catch (error) {
    // Driver errors reach us as "External error id#N"; the original sits in the registry.
    const id = error instanceof Error ? /External error id#(\d+)/.exec(error.message) : null;
    const original = id ? bound.errorRegistry.consumeError(Number(id[1])) : undefined;
    if (original) throw original.error;
    // A Rust panic surfaces as a bare wasm RuntimeError ("unreachable"); its text is in the registry.
    const panic = panicRegistry.get();
    if (error instanceof Error && error.name === 'RuntimeError' && panic !== '') {
      panicRegistry.clear();
      throw new Error(`schema engine panicked: ${panic}`);
    }
    throw error;
  } finally {
    try {
      engine?.free();
    } catch {
      // after a panic the engine is still "borrowed" and cannot be freed; leak it
    }
  }
}

/** The pg/driver-adapter error behind a DriverAdapterError, if any. */
function driverCause(error: unknown): unknown {
  if (error instanceof Error && error.name === 'DriverAdapterError') {
    const cause = (error as { cause?: unknown }).cause;
    if (cause !== null && typeof cause === 'object') return cause;
  }
  return undefined;
}

/**
 * The pg adapter's `executeScript` splits a script on every `;`, which breaks dollar-quoted
 * function bodies (our append-only audit trigger). PostgreSQL's simple query protocol runs a
 * multi-statement script as one implicit transaction, so hand it the script whole.
 */
function wholeScriptFactory(pool: pg.Pool): SqlMigrationAwareDriverAdapterFactory {
  const inner = new PrismaPg(pool);
  const wrap = async (adapter: Promise<SqlDriverAdapter>): Promise<SqlDriverAdapter> => {
    const connected = await adapter;
    connected.executeScript = async (script: string) => {
      await pool.query(script);
    };
    return connected;
  };
  return {
    provider: inner.provider,
    adapterName: inner.adapterName,
    connect: () => wrap(inner.connect()),
    connectToShadowDb: () => wrap(inner.connectToShadowDb()),
  };
}

/** The role a PostgreSQL URL connects as ('' when the URL names none). */
export function roleOf(databaseUrl: string): string {
  return decodeURIComponent(new URL(databaseUrl).username);
}

/** Double-quoted SQL identifier. */
function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * Issue 11: the serving role (DATABASE_URL's user, when it differs from the migrating owner) gets
 * data access to every table of the schema, default privileges for tables and sequences the
 * owner creates later, and on audit_records only INSERT and SELECT: not being the owner, it can
 * neither ALTER the table (its append-only trigger) nor TRUNCATE it. Idempotent; run after every
 * migrate, under the migration lock (concurrent GRANTs on one object can fail).
 */
async function grantServingRole(client: pg.Client, role: string): Promise<void> {
  const r = ident(role);
  await client.query('BEGIN');
  try {
    await client.query(`GRANT USAGE ON SCHEMA public TO ${r}`);
    await client.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${r}`);
    await client.query(`GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO ${r}`);
    await client.query(`GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO ${r}`);
    await client.query(`REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON audit_records FROM ${r}`);
    await client.query(`REVOKE ALL ON _prisma_migrations FROM ${r}`);
    await client.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ${r}`);
    await client.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO ${r}`);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/**
 * Applies the pending migrations in `migrationsDir` to `databaseUrl` and returns the names of
 * those this call applied (empty when up to date). Serialised across processes by a
 * PostgreSQL advisory lock, so replicas starting together apply each migration once.
 * With `servingUrl` naming another role than `databaseUrl`, that role is then granted what
 * serving needs (see grantServingRole).
 */
export async function applyMigrations(
  databaseUrl: string,
  migrationsDir: string,
  log: (msg: string) => void,
  servingUrl?: string,
): Promise<string[]> {
  const migrationsList = await readMigrations(migrationsDir);
  const lockClient = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 10_000 });
  lockClient.on('error', () => undefined); // a dropped connection surfaces through the queries below
  try {
    await lockClient.connect();
  } catch (error) {
    await lockClient.end().catch(() => undefined);
    throw new Error(`migrations: cannot connect to the database: ${messageOf(error)}`);
  }
  // One connection: session-level state the engine may rely on stays on one session.
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 1, connectionTimeoutMillis: 10_000 });
  pool.on('error', () => undefined);
  try {
    const got = await lockClient.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [MIGRATION_LOCK_KEY]);
    if (got.rows[0]?.locked !== true) {
      log('migrations: another instance holds the migration lock; waiting');
      await lockClient.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    }
    try {
      const output = await withEngine(wholeScriptFactory(pool), log, (engine) =>
        engine.applyMigrations({ migrationsList, filters: FILTERS }),
      );
      const servingRole = servingUrl === undefined ? '' : roleOf(servingUrl);
      if (servingRole !== '' && servingRole !== roleOf(databaseUrl)) {
        await grantServingRole(lockClient, servingRole);
        log(`migrations: serving role ${servingRole} granted data access (audit_records: INSERT, SELECT only)`);
      }
      return output.appliedMigrationNames;
    } finally {
      await lockClient.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    }
  } catch (error) {
    throw new Error(`migrations failed: ${messageOf(error)}`);
  } finally {
    await pool.end().catch(() => undefined);
    await lockClient.end().catch(() => undefined);
  }
}

/**
 * `diff` between schema files needs no database, but `SchemaEngine.new` still connects its
 * adapter and asks for the server version: this adapter answers that one query (as a
 * PostgreSQL 15) and refuses anything else.
 */
const OFFLINE_FACTORY: SqlMigrationAwareDriverAdapterFactory = (() => {
  const refuse = (what: string) => Promise.reject(new Error(`schema diff runs without a database (${what})`));
  const adapter = (): SqlDriverAdapter => ({
    provider: 'postgres',
    adapterName: 'gatehouse-offline',
    queryRaw: (query) =>
      query.sql.includes('server_version_num')
        ? Promise.resolve({
            columnNames: ['exists', 'version', 'numeric_version'],
            columnTypes: [ColumnTypeEnum.Boolean, ColumnTypeEnum.Text, ColumnTypeEnum.Int32],
            rows: [[true, 'PostgreSQL 15.0 (offline)', 150000]],
          })
        : refuse(query.sql),
    executeRaw: (query) => refuse(query.sql),
    executeScript: () => refuse('script'),
    startTransaction: () => refuse('transaction'),
    dispose: () => Promise.resolve(),
  });
  return {
    provider: 'postgres',
    adapterName: 'gatehouse-offline',
    connect: () => Promise.resolve(adapter()),
    connectToShadowDb: () => Promise.resolve(adapter()),
  };
})();

/**
 * The SQL script that migrates a database from the schema in `fromSchemaPath` (or an empty
 * database when null) to the one in `toSchemaPath`. Empty string when there is no change.
 * Needs no database.
 */
export async function diffSchemas(fromSchemaPath: string | null, toSchemaPath: string): Promise<string> {
  const target = async (file: string) => ({
    tag: 'schemaDatamodel' as const,
    files: [{ path: path.resolve(file), content: await readFile(file, 'utf8') }],
  });
  const from = fromSchemaPath === null ? { tag: 'empty' as const } : await target(fromSchemaPath);
  const to = await target(toSchemaPath);
  try {
    const result = await withEngine(
      OFFLINE_FACTORY,
      () => undefined,
      (engine) => engine.diff({ from, to, script: true, exitCode: true, filters: FILTERS }),
    );
    // exitCode 2 = the schemas differ; 0 = no change (stdout then holds a "-- This is an empty migration." comment).
    return result.exitCode === 0 ? '' : (result.stdout ?? '');
  } catch (error) {
    throw new Error(`schema diff failed: ${messageOf(error)}`);
  }
}
