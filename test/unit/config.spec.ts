import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/config';
import { configSchema } from '../../src/config/config.schema';

const tempDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'gh-config-'));

describe('loadConfig', () => {
  it('applies the contract defaults', () => {
    const config = loadConfig({ DATA_DIR: tempDir() });
    expect(config.PORT).toBe(3000);
    expect(config.GRPC_PORT).toBe(50051);
    expect(config.PUBLIC_URL).toBe('http://localhost:3000');
    expect(config.ACCESS_TOKEN_TTL).toBe(600);
    expect(config.REFRESH_TOKEN_TTL).toBe(1209600);
    expect(config.REFRESH_REUSE_GRACE).toBe(10);
    expect(config.SESSION_MAX_AGE).toBe(2592000);
    expect(config.MIGRATE_ON_START).toBe(true);
    expect(config.UPSTREAM_TIMEOUT_MS).toBe(5000);
    expect(config.AUTH_ACCOUNT_FAILURE_LIMIT).toBe(10);
    expect(config.AUTH_IP_LIMIT).toBe(100);
    expect(config.AUTH_WINDOW).toBe(900);
    expect(config.AUTH_ACCOUNT_GLOBAL_FAILURE_LIMIT).toBe(100);
    expect(config.MFA_FAILURE_LIMIT).toBe(20);
    expect(config.SELF_REAUTH_MAX_AGE).toBe(300);
    expect(config.ADMIN_REAUTH_MAX_AGE).toBe(900);
    expect(config.ADMIN_MFA_REQUIRED).toBe(false);
    expect(config.TRUST_PROXY).toBe(false);
    expect(config.CORS_ORIGINS).toEqual([]);
    expect(config.SHUTDOWN_DRAIN_MS).toBe(1000);
    expect(config.DATABASE_URL).toBeUndefined();
    expect(config.NATS_URL).toBeUndefined();
    expect(config.TENANT_RATE_LIMIT).toEqual({ limit: 6000, periodMs: 60_000 });
    expect(config.PRINCIPAL_RATE_LIMIT).toEqual({ limit: 1200, periodMs: 60_000 });
    expect(config.IP_IN_FLIGHT_LIMIT).toBe(40);
    expect(config.WS_MESSAGE_RATE_LIMIT).toEqual({ limit: 100, periodMs: 1000 });
    expect(config.ADMIN_WRITE_LIMIT).toEqual({ limit: 600, periodMs: 60_000 });
    expect(config.PASSWORD_HASH_QUEUE).toBe(16);
  });

  it('reads rates as N/<duration>, 0 disabling the scope', () => {
    const config = loadConfig({
      DATA_DIR: tempDir(),
      TENANT_RATE_LIMIT: '20/1m',
      PRINCIPAL_RATE_LIMIT: '0',
      WS_MESSAGE_RATE_LIMIT: '5/1s',
    });
    expect(config.TENANT_RATE_LIMIT).toEqual({ limit: 20, periodMs: 60_000 });
    expect(config.PRINCIPAL_RATE_LIMIT.limit).toBe(0);
    expect(config.WS_MESSAGE_RATE_LIMIT).toEqual({ limit: 5, periodMs: 1000 });
  });

  it.each([
    ['PORT', 'not-a-port'],
    ['PORT', '70000'],
    ['ACCESS_TOKEN_TTL', '-5'],
    ['DATABASE_URL', 'mysql://x'],
    ['MASTER_KEY', 'c2hvcnQ='],
    ['MASTER_KEY_PREVIOUS', `${Buffer.alloc(32, 1).toString('base64')},c2hvcnQ=`],
    ['MIGRATE_ON_START', 'maybe'],
    ['LOG_LEVEL', 'loud'],
  ])('refuses bad %s=%s with one line naming the variable', (name, value) => {
    expect(() => loadConfig({ DATA_DIR: tempDir(), [name]: value })).toThrowError(ConfigError);
    try {
      loadConfig({ DATA_DIR: tempDir(), [name]: value });
    } catch (error) {
      expect((error as Error).message).toMatch(new RegExp(`^config: ${name}: `));
      expect((error as Error).message).not.toContain('\n');
    }
  });

  it('reads NAME_FILE secrets', () => {
    const dir = tempDir();
    const key = Buffer.alloc(32, 7).toString('base64');
    fs.writeFileSync(path.join(dir, 'mk'), `${key}\n`);
    const config = loadConfig({ DATA_DIR: dir, MASTER_KEY_FILE: path.join(dir, 'mk') });
    expect(config.MASTER_KEY.equals(Buffer.alloc(32, 7))).toBe(true);
    expect(config.masterKeyGenerated).toBe(false);
  });

  it('names the variable when a _FILE cannot be read', () => {
    expect(() => loadConfig({ DATA_DIR: tempDir(), MASTER_KEY_FILE: '/nonexistent/key' })).toThrowError(/^config: MASTER_KEY_FILE: /);
  });

  it('merges DATABASE_PASSWORD_FILE into DATABASE_URL, percent-encoded', () => {
    const dir = tempDir();
    const password = 'p@ss:w/rd#?% x';
    fs.writeFileSync(path.join(dir, 'db-password'), `${password}\n`);
    const config = loadConfig({
      DATA_DIR: dir,
      DATABASE_URL: 'postgresql://gatehouse@postgres:5432/gatehouse?sslmode=disable',
      DATABASE_PASSWORD_FILE: path.join(dir, 'db-password'),
    });
    const url = new URL(config.DATABASE_URL!);
    expect(decodeURIComponent(url.password)).toBe(password);
    expect(url.username).toBe('gatehouse');
    expect(url.host).toBe('postgres:5432');
    expect(url.pathname).toBe('/gatehouse');
    expect(url.searchParams.get('sslmode')).toBe('disable');
    expect(config).not.toHaveProperty('DATABASE_PASSWORD');
  });

  it('leaves DATABASE_URL as it is without DATABASE_PASSWORD', () => {
    const config = loadConfig({ DATA_DIR: tempDir(), DATABASE_URL: 'postgresql://app:secret@db:5432/app' });
    expect(config.DATABASE_URL).toBe('postgresql://app:secret@db:5432/app');
  });

  it.each([
    ['without DATABASE_URL', {}, /^config: DATABASE_PASSWORD: needs DATABASE_URL/],
    [
      'when DATABASE_URL already has a password',
      { DATABASE_URL: 'postgresql://app:other@db/app' },
      /^config: DATABASE_PASSWORD: DATABASE_URL already carries/,
    ],
  ])('refuses DATABASE_PASSWORD %s', (_case, env, message) => {
    expect(() => loadConfig({ DATA_DIR: tempDir(), DATABASE_PASSWORD: 'secret', ...env })).toThrowError(message);
  });

  it('migrates as DATABASE_MIGRATION_URL (+ DATABASE_MIGRATION_PASSWORD), defaulting to DATABASE_URL (issue 11)', () => {
    const serving = 'postgresql://app:secret@db:5432/app';
    expect(loadConfig({ DATA_DIR: tempDir(), DATABASE_URL: serving }).DATABASE_MIGRATION_URL).toBe(serving);
    const config = loadConfig({
      DATA_DIR: tempDir(),
      DATABASE_URL: serving,
      DATABASE_MIGRATION_URL: 'postgresql://owner@db:5432/app',
      DATABASE_MIGRATION_PASSWORD: 'p@ss',
    });
    expect(config.DATABASE_MIGRATION_URL).toBe('postgresql://owner:p%40ss@db:5432/app');
    expect(config).not.toHaveProperty('DATABASE_MIGRATION_PASSWORD');
    expect(loadConfig({ DATA_DIR: tempDir() }).DATABASE_MIGRATION_URL).toBeUndefined();
  });

  it.each([
    [
      'DATABASE_MIGRATION_URL without DATABASE_URL',
      { DATABASE_MIGRATION_URL: 'postgresql://owner@db/app' },
      /^config: DATABASE_MIGRATION_URL: needs DATABASE_URL/,
    ],
    [
      'DATABASE_MIGRATION_PASSWORD without DATABASE_MIGRATION_URL',
      { DATABASE_URL: 'postgresql://app@db/app', DATABASE_MIGRATION_PASSWORD: 'x' },
      /^config: DATABASE_MIGRATION_PASSWORD: needs DATABASE_MIGRATION_URL/,
    ],
  ])('refuses %s', (_case, env, message) => {
    expect(() => loadConfig({ DATA_DIR: tempDir(), ...env })).toThrowError(message);
  });

  it('requires MASTER_KEY in production and generates a stable dev key otherwise', () => {
    const dir = tempDir();
    expect(() => loadConfig({ DATA_DIR: dir, NODE_ENV: 'production' })).toThrowError(/^config: MASTER_KEY: required/);
    const first = loadConfig({ DATA_DIR: dir });
    const second = loadConfig({ DATA_DIR: dir });
    expect(first.masterKeyGenerated).toBe(true);
    expect(first.MASTER_KEY.equals(second.MASTER_KEY)).toBe(true);
  });

  it('requires a second factor for admin mutations by default in production only (ADMIN_MFA_REQUIRED)', () => {
    const key = Buffer.alloc(32, 7).toString('base64');
    expect(loadConfig({ DATA_DIR: tempDir(), NODE_ENV: 'production', MASTER_KEY: key }).ADMIN_MFA_REQUIRED).toBe(true);
    expect(
      loadConfig({ DATA_DIR: tempDir(), NODE_ENV: 'production', MASTER_KEY: key, ADMIN_MFA_REQUIRED: 'false' }).ADMIN_MFA_REQUIRED,
    ).toBe(false);
    expect(loadConfig({ DATA_DIR: tempDir(), ADMIN_MFA_REQUIRED: 'true' }).ADMIN_MFA_REQUIRED).toBe(true);
  });

  it('parses TRUST_PROXY lists and CORS origins', () => {
    const config = loadConfig({
      DATA_DIR: tempDir(),
      TRUST_PROXY: '10.0.0.0/8, 127.0.0.1',
      CORS_ORIGINS: 'https://a.example,https://b.example',
    });
    expect(config.TRUST_PROXY).toEqual(['10.0.0.0/8', '127.0.0.1']);
    expect(config.CORS_ORIGINS).toEqual(['https://a.example', 'https://b.example']);
  });
});

// Every variable the schema knows, with a value it must refuse; the ones that take any text
// (paths, client ids, secrets) are listed apart. A variable in neither list fails the last test.
const BAD_VALUES: Record<string, string> = {
  NODE_ENV: 'prod',
  PORT: '3000abc',
  GRPC_PORT: '-1',
  PUBLIC_URL: 'localhost:3000',
  EMAIL_VERIFY_URL: 'https://id.example.com/verify',
  PASSWORD_RESET_URL: 'ftp://id.example.com/reset?token={token}',
  MAIL_TEMPLATES_DIR: '/nonexistent/gatehouse-mail-templates',
  DATABASE_URL: 'mysql://db/app',
  DATABASE_MIGRATION_URL: 'mysql://db/app',
  NATS_URL: 'http://nats:4222',
  MASTER_KEY: 'c2hvcnQ=',
  MASTER_KEY_PREVIOUS: 'c2hvcnQ=',
  JWKS_MAX_AGE: '301',
  TLS_CLIENT_CERT_REQUIRED: 'sometimes',
  ACCESS_TOKEN_TTL: '10m',
  REFRESH_TOKEN_TTL: '0',
  REFRESH_REUSE_GRACE: 'soon',
  SESSION_MAX_AGE: '1.5',
  MIGRATE_ON_START: 'maybe',
  SMTP_URL: 'http://mail',
  MAIL_FROM: 'nobody',
  OIDC_GOOGLE_ISSUER: 'accounts.google.com',
  OIDC_GOOGLE_REDIRECT_URI: '/callback',
  OIDC_RETURN_TO_ALLOWLIST: 'https://ok.example/,javascript:alert(1)',
  BOOTSTRAP_ADMIN_EMAIL: 'admin',
  UPSTREAM_TIMEOUT_MS: '0',
  ROUTING_KV_BUCKET: 'a.b',
  UPSTREAM_BREAKER_FAILURES: 'five',
  UPSTREAM_BREAKER_COOLDOWN_MS: '5',
  WS_MAX_MESSAGE_BYTES: '1',
  WS_MAX_CONNECTIONS_PER_PRINCIPAL: '0',
  WORKERS: '0',
  AUTH_ACCOUNT_FAILURE_LIMIT: '0',
  AUTH_IP_LIMIT: 'lots',
  AUTH_WINDOW: '-1',
  TENANT_RATE_LIMIT: '100 per minute',
  TENANT_RATE_BURST: '0',
  PRINCIPAL_RATE_LIMIT: '100/0s',
  PRINCIPAL_RATE_BURST: 'ten',
  IP_IN_FLIGHT_LIMIT: '-1',
  WS_MESSAGE_RATE_LIMIT: '100/1x',
  ADMIN_WRITE_LIMIT: '600',
  PASSWORD_HASH_CONCURRENCY: '0',
  PASSWORD_HASH_QUEUE: 'many',
  AUTH_ACCOUNT_GLOBAL_FAILURE_LIMIT: '0',
  MFA_FAILURE_LIMIT: 'twenty',
  SELF_REAUTH_MAX_AGE: '5m',
  ADMIN_MFA_REQUIRED: 'sometimes',
  ADMIN_REAUTH_MAX_AGE: '0',
  TRUST_PROXY: 'banana',
  CORS_ORIGINS: 'https://app.example.com/',
  LOG_LEVEL: 'loud',
  SHUTDOWN_DRAIN_MS: '1s',
  OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318',
  POLICY_URL: 'opa:8181/v1/data/gatehouse/authz',
  POLICY_TIMEOUT_MS: '0',
  DB_TIMEOUT_MS: '50',
  REQUEST_TIMEOUT_MS: '0',
  RETENTION_PERIOD: '7d',
  RETENTION_INTERVAL: '-1',
  BENCH_AUDIT_PLAIN_INSERT: 'plain',
};
const FREE_TEXT = new Set([
  'DATA_DIR',
  'ROUTING_FILE',
  'DATABASE_PASSWORD',
  'DATABASE_MIGRATION_PASSWORD',
  'OIDC_GOOGLE_CLIENT_ID',
  'OIDC_GOOGLE_CLIENT_SECRET',
  'BOOTSTRAP_ADMIN_PASSWORD',
  // file paths (checked for readability at start: test/e2e/nats-credentials.spec.ts) and credentials
  'NATS_CREDS_FILE',
  'NATS_USER',
  'NATS_PASSWORD',
  'NATS_TLS_CA_FILE',
  'DATABASE_CA_FILE',
  'UPSTREAM_TLS_CA_FILE',
  'UPSTREAM_TLS_CERT_FILE',
  'UPSTREAM_TLS_KEY_FILE',
  'TLS_CERT_FILE',
  'TLS_KEY_FILE',
  'TLS_CLIENT_CA_FILE',
]);

describe('every variable is validated with a message naming it', () => {
  it.each(Object.entries(BAD_VALUES))('refuses %s=%s', (name, value) => {
    let message = '';
    try {
      loadConfig({ DATA_DIR: tempDir(), [name]: value });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      message = (error as Error).message;
    }
    expect(message).toMatch(new RegExp(`^config: ${name}: \\S`));
    expect(message).not.toContain('\n');
  });

  it('has a refusal case for every variable in the schema that is not free text', () => {
    const unclassified = Object.keys(configSchema.shape).filter((name) => !(name in BAD_VALUES) && !FREE_TEXT.has(name));
    expect(unclassified).toEqual([]);
  });

  it.each([
    ['TRUST_PROXY', '10.0.0.0/33'],
    ['TRUST_PROXY', '10.0.0.1, proxy.internal'],
    ['CORS_ORIGINS', '*'],
    ['CORS_ORIGINS', 'app.example.com'],
    ['CORS_ORIGINS', 'https://app.example.com/admin'],
    ['CORS_ORIGINS', 'ftp://files.example.com'],
    ['NATS_URL', 'nats://a:4222,not a server'],
  ])('refuses %s=%s', (name, value) => {
    expect(() => loadConfig({ DATA_DIR: tempDir(), [name]: value })).toThrowError(new RegExp(`^config: ${name}: `));
  });

  it('serves with one process unless WORKERS says otherwise, and with the CPUs in production when NATS and PostgreSQL are there', () => {
    const shared = { NATS_URL: 'nats://127.0.0.1:4222', DATABASE_URL: 'postgresql://db/app' };
    const production = { NODE_ENV: 'production', MASTER_KEY: Buffer.alloc(32, 1).toString('base64') };
    expect(loadConfig({ DATA_DIR: tempDir() }).WORKERS).toBe(1);
    expect(loadConfig({ DATA_DIR: tempDir(), ...production }).WORKERS).toBe(1);
    expect(loadConfig({ DATA_DIR: tempDir(), ...production, ...shared }).WORKERS).toBe(os.availableParallelism());
    expect(loadConfig({ DATA_DIR: tempDir(), ...shared, WORKERS: '3' }).WORKERS).toBe(3);
    expect(() => loadConfig({ DATA_DIR: tempDir(), WORKERS: '2', DATABASE_URL: shared.DATABASE_URL })).toThrowError(
      /^config: WORKERS: more than 1 needs NATS_URL/,
    );
    expect(() => loadConfig({ DATA_DIR: tempDir(), WORKERS: '2', NATS_URL: shared.NATS_URL })).toThrowError(
      /^config: WORKERS: more than 1 needs DATABASE_URL/,
    );
  });

  it('takes DATABASE_CA_FILE without a DATABASE_MIGRATION_URL, for both connections', () => {
    const dir = tempDir();
    const ca = path.join(dir, 'ca.pem');
    fs.writeFileSync(ca, 'x');
    const config = loadConfig({ DATA_DIR: dir, DATABASE_URL: 'postgresql://app@db:5432/gh', DATABASE_CA_FILE: ca });
    expect(config.DATABASE_URL).toContain('sslmode=verify-full');
    expect(config.DATABASE_MIGRATION_URL ?? config.DATABASE_URL).toContain('sslmode=verify-full');
  });

  it('wants the upstream mTLS files together and readable', () => {
    const dir = tempDir();
    const file = path.join(dir, 'pem');
    fs.writeFileSync(file, 'x');
    expect(() => loadConfig({ DATA_DIR: dir, UPSTREAM_TLS_CA_FILE: file })).toThrowError(/^config: UPSTREAM_TLS_CERT_FILE: .*together/);
    expect(() =>
      loadConfig({ DATA_DIR: dir, UPSTREAM_TLS_CA_FILE: file, UPSTREAM_TLS_CERT_FILE: file, UPSTREAM_TLS_KEY_FILE: '/nonexistent/key' }),
    ).toThrowError(/^config: UPSTREAM_TLS_KEY_FILE: cannot read/);
    expect(
      loadConfig({ DATA_DIR: dir, UPSTREAM_TLS_CA_FILE: file, UPSTREAM_TLS_CERT_FILE: file, UPSTREAM_TLS_KEY_FILE: file })
        .UPSTREAM_TLS_CA_FILE,
    ).toBe(file);
  });

  it('says what TRUST_PROXY expects and which entry is wrong', () => {
    expect(() => loadConfig({ DATA_DIR: tempDir(), TRUST_PROXY: '10.0.0.1,banana' })).toThrowError(
      /^config: TRUST_PROXY: "banana" is not an IP address or CIDR/,
    );
  });

  it('never echoes a password from a bad URL', () => {
    expect(() => loadConfig({ DATA_DIR: tempDir(), NATS_URL: 'http://user:hunter2@nats:4222' })).toThrowError(
      /^config: NATS_URL: "http:\/\/\*\*\*@nats:4222"/,
    );
    expect(() => loadConfig({ DATA_DIR: tempDir(), DATABASE_URL: 'mysql://user:hunter2@db/app' })).not.toThrowError(/hunter2/);
  });

  it.each([
    ['TRUST_PROXY', 'true', true],
    [
      'TRUST_PROXY',
      'loopback, 10.0.0.0/8, ::1, fd00::/8, 192.168.0.0/255.255.0.0',
      ['loopback', '10.0.0.0/8', '::1', 'fd00::/8', '192.168.0.0/255.255.0.0'],
    ],
    ['CORS_ORIGINS', 'https://app.example.com, http://localhost:5173', ['https://app.example.com', 'http://localhost:5173']],
    ['NATS_URL', 'nats://a:4222, tls://b:4222,c:4222', 'nats://a:4222, tls://b:4222,c:4222'],
    ['OIDC_RETURN_TO_ALLOWLIST', 'https://app.example.com/', ['https://app.example.com/']],
    ['MAIL_FROM', 'no-reply@example.com', 'no-reply@example.com'],
  ])('accepts %s=%s', (name, value, expected) => {
    expect(loadConfig({ DATA_DIR: tempDir(), [name]: value })[name as keyof ReturnType<typeof loadConfig>]).toEqual(expected);
  });
});
