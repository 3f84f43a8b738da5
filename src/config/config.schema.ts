import { z } from 'zod';
import os from 'node:os';
import { natsServers, originList, rateValue, trustProxyValue, urlList } from './config-values';

const integer = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const seconds = integer(1, 10 * 365 * 24 * 3600);
const booleanString = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((value) => value === 'true' || value === '1' || value === 'yes');
const optionalString = z
  .string()
  .optional()
  .transform((value) => (value === undefined || value.trim() === '' ? undefined : value.trim()));

const masterKey = optionalString.refine(
  (value) => value === undefined || Buffer.from(value, 'base64').length === 32,
  'must be 32 bytes, base64-encoded',
);

const previousMasterKeys = optionalString.refine(
  (value) => value === undefined || value.split(',').every((key) => Buffer.from(key.trim(), 'base64').length === 32),
  'must be comma-separated 32-byte base64 keys',
);

const url = (protocols: string[]) =>
  optionalString.refine(
    (value) => {
      if (value === undefined) return true;
      try {
        return protocols.includes(new URL(value).protocol);
      } catch {
        return false;
      }
    },
    `must be a URL (${protocols.join(' or ')})`,
  );

/** A link in a mail: an http(s) URL with `{token}` where the one-time token goes (CONTRACT §12). */
const linkTemplate = url(['http:', 'https:']).refine((value) => value === undefined || value.includes('{token}'), 'must contain {token}');

export const configSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: integer(0, 65535).default(3000),
  GRPC_PORT: integer(0, 65535).default(50051),
  PUBLIC_URL: url(['http:', 'https:']),
  DATABASE_URL: url(['postgres:', 'postgresql:']),
  // Not in the contract: a password merged into DATABASE_URL, so a Swarm deployment can hand
  // PostgreSQL (POSTGRES_PASSWORD_FILE) and Gatehouse (DATABASE_PASSWORD_FILE) one secret.
  DATABASE_PASSWORD: optionalString,
  // Not in the contract (issue 11): the owner role that runs migrations; DATABASE_URL is then a
  // serving role the migrator grants INSERT/SELECT only on audit_records. Default: DATABASE_URL.
  DATABASE_MIGRATION_URL: url(['postgres:', 'postgresql:']),
  DATABASE_MIGRATION_PASSWORD: optionalString,
  DATA_DIR: z.string().min(1).default('./data'),
  NATS_URL: natsServers,
  ROUTING_FILE: optionalString,
  MASTER_KEY: masterKey,
  MASTER_KEY_PREVIOUS: previousMasterKeys,
  ACCESS_TOKEN_TTL: seconds.default(600),
  // §3/§6: JWKS Cache-Control max-age (at most 300 s), and how long a key is published before it may sign
  JWKS_MAX_AGE: integer(0, 300).default(300),
  REFRESH_TOKEN_TTL: seconds.default(1209600),
  REFRESH_REUSE_GRACE: integer(0, 3600).default(10),
  SESSION_MAX_AGE: seconds.default(2592000),
  MIGRATE_ON_START: booleanString.default(true),
  SMTP_URL: url(['smtp:', 'smtps:']),
  MAIL_FROM: z
    .string()
    .regex(/^([^<>]*<[^<>@\s]+@[^<>@\s]+>|[^<>@\s]+@[^<>@\s]+)$/, 'must be an address, or "Name <address>"')
    .default('Gatehouse <no-reply@localhost>'),
  OIDC_GOOGLE_ISSUER: url(['https:', 'http:']).transform((value) => value ?? 'https://accounts.google.com'),
  OIDC_GOOGLE_CLIENT_ID: optionalString,
  OIDC_GOOGLE_CLIENT_SECRET: optionalString,
  OIDC_GOOGLE_REDIRECT_URI: url(['http:', 'https:']),
  OIDC_RETURN_TO_ALLOWLIST: urlList(['https:', 'http:']),
  BOOTSTRAP_ADMIN_EMAIL: optionalString.refine(
    (value) => value === undefined || /^[^@\s]+@[^@\s]+$/.test(value),
    'must be an email address',
  ),
  BOOTSTRAP_ADMIN_PASSWORD: optionalString,
  UPSTREAM_TIMEOUT_MS: integer(1, 600_000).default(5000),
  // Not in the contract: the JetStream KV bucket holding the routing document (tests isolate
  // theirs), and the per-endpoint circuit breaker and WebSocket message limits.
  ROUTING_KV_BUCKET: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be a KV bucket name (letters, digits, _ and -)')
    .default('gatehouse_routing'),
  UPSTREAM_BREAKER_FAILURES: integer(1, 1000).default(5),
  UPSTREAM_BREAKER_COOLDOWN_MS: integer(100, 600_000).default(10_000),
  WS_MAX_MESSAGE_BYTES: integer(1024, 64 * 1024 * 1024).default(1024 * 1024),
  WS_MAX_CONNECTIONS_PER_PRINCIPAL: integer(1, 1_000_000).default(20),
  // processes serving in one replica (CONTRACT §2); the default is resolved in config.ts
  WORKERS: integer(1, 1024).optional(),
  AUTH_ACCOUNT_FAILURE_LIMIT: integer(1, 1_000_000).default(10),
  AUTH_IP_LIMIT: integer(1, 10_000_000).default(100),
  AUTH_WINDOW: seconds.default(900),
  // §9 traffic limits on proxied traffic; a burst left unset is one tenth of N (at least 1)
  TENANT_RATE_LIMIT: rateValue('6000/60s'),
  TENANT_RATE_BURST: integer(1, 1_000_000_000).optional(),
  PRINCIPAL_RATE_LIMIT: rateValue('1200/60s'),
  PRINCIPAL_RATE_BURST: integer(1, 1_000_000_000).optional(),
  IP_IN_FLIGHT_LIMIT: integer(0, 1_000_000).default(40),
  WS_MESSAGE_RATE_LIMIT: rateValue('100/1s'),
  ADMIN_WRITE_LIMIT: rateValue('600/60s'),
  // §4 wave 2: the password hasher's bound (default: the CPUs this process may use)
  PASSWORD_HASH_CONCURRENCY: integer(1, 1024).default(Math.max(1, os.availableParallelism())),
  PASSWORD_HASH_QUEUE: integer(0, 100_000).default(16),
  // §4 wave 2: per account from every address, and second-factor failures since the last success
  AUTH_ACCOUNT_GLOBAL_FAILURE_LIMIT: integer(1, 10_000_000).default(100),
  MFA_FAILURE_LIMIT: integer(1, 1_000_000).default(20),
  SELF_REAUTH_MAX_AGE: seconds.default(300),
  // §6 step-up: unset means true in production, false otherwise (resolved in loadConfig)
  ADMIN_MFA_REQUIRED: booleanString.optional(),
  ADMIN_REAUTH_MAX_AGE: seconds.default(900),
  TRUST_PROXY: trustProxyValue,
  CORS_ORIGINS: originList,
  // The OpenTelemetry SDK reads it (and the other OTEL_* variables) itself; validated here so a
  // typo stops the start with its name, and so main.ts knows whether to load the SDK at all.
  OTEL_EXPORTER_OTLP_ENDPOINT: url(['http:', 'https:']),
  // Not in the contract: how long expired, revoked or used sessions, tokens, OIDC states and
  // limiter counters are kept before the retention job deletes them, and how often it runs (0 = never).
  RETENTION_PERIOD: seconds.default(7 * 24 * 3600),
  RETENTION_INTERVAL: integer(0, 7 * 24 * 3600).default(3600),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  // Not in the contract: how long SIGTERM keeps serving with /ready at 503 before closing
  // the listener, so a balancer polling /ready can take the replica out first.
  SHUTDOWN_DRAIN_MS: integer(0, 120_000).default(1000),
  // §13: the policy hook (OPA data API) asked after an RBAC allow on proxied traffic
  POLICY_URL: url(['http:', 'https:']),
  POLICY_TIMEOUT_MS: integer(1, 60_000).default(100),
  DB_TIMEOUT_MS: integer(100, 600_000).default(3000),
  // §2 (wave 2): headers or body not received within this time → 408 and the connection closed
  REQUEST_TIMEOUT_MS: integer(100, 600_000).default(30_000),
  // §13: NATS credentials (a .creds file, or user + password) and the CA its TLS certificate chains to
  NATS_CREDS_FILE: optionalString,
  NATS_USER: optionalString,
  NATS_PASSWORD: optionalString,
  NATS_TLS_CA_FILE: optionalString,
  // §13: the CA PostgreSQL's certificate must chain to (sslrootcert); sslmode defaults to verify-full with it
  DATABASE_CA_FILE: optionalString,
  // §13: mTLS to every upstream (all three or none); the files are re-read when they change
  UPSTREAM_TLS_CA_FILE: optionalString,
  UPSTREAM_TLS_CERT_FILE: optionalString,
  UPSTREAM_TLS_KEY_FILE: optionalString,
  // §13: HTTPS (and gRPC over TLS) on our own listeners, and client certificates
  TLS_CERT_FILE: optionalString,
  TLS_KEY_FILE: optionalString,
  TLS_CLIENT_CA_FILE: optionalString,
  TLS_CLIENT_CERT_REQUIRED: booleanString.default(false),
  // Not in the contract, benchmark only (scripts/bench.js): the audit append becomes a plain
  // insert with no seq chain or hash, to measure what chaining costs. Never set it in production.
  BENCH_AUDIT_PLAIN_INSERT: booleanString.default(false),
  // §12: where the links in mails lead (default: Gatehouse's own /account pages), and a directory
  // of operator templates that replace the built-in mails
  EMAIL_VERIFY_URL: linkTemplate,
  PASSWORD_RESET_URL: linkTemplate,
  MAIL_TEMPLATES_DIR: optionalString,
});

export type RawConfig = z.infer<typeof configSchema>;
