import cluster from 'node:cluster';
import os from 'node:os';

// argon2 runs on threads of its own (identity/hash-workers.ts), so libuv's pool serves only the
// WebCrypto, DNS and file work of other requests; four threads beyond the password-hash bound
// stay as they were, generous (CONTRACT §4). Set before anything touches the pool; an explicit
// UV_THREADPOOL_SIZE wins.
process.env.UV_THREADPOOL_SIZE ??= String(Number(process.env.PASSWORD_HASH_CONCURRENCY ?? os.availableParallelism()) + 4);
import 'reflect-metadata';
import { ConfigError, loadConfig } from './config/config';
import { assertBootstrapAdminPassword } from './identity/bootstrap-admin-password';
import { readBuildInfo } from './observability/build-info';
import { createLogger } from './observability/logger';
import type { Tracing } from './observability/tracing';
import { EARLY_LISTENER_ENV, WORKER_STARTED } from './workers';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
    // before the application is imported, so a weak password is refused as fast as any bad variable
    assertBootstrapAdminPassword(config);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(78);
    }
    throw error;
  }
  const logger = createLogger(config.LOG_LEVEL);
  if (config.WORKERS > 1 && cluster.isPrimary) {
    const { superviseWorkers } = await import('./workers.js');
    await superviseWorkers(config, logger);
    return;
  }
  // Tracing patches fastify, pg, undici, http and gRPC as they load, so it starts before the
  // application is imported; without an endpoint no OpenTelemetry module is loaded at all.
  let tracing: Tracing | undefined;
  if (config.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined) {
    const { startTracing } = await import('./observability/tracing.js');
    tracing = startTracing(readBuildInfo().version);
  }
  // Listening from here on: /health answers while the application is built and while it
  // waits for the database or NATS (CONTRACT §8); the application then takes this server over.
  // With WORKERS > 1 only the first worker does (a later one shares the port with workers that serve).
  let listener;
  if (cluster.isPrimary || process.env[EARLY_LISTENER_ENV] === '1') {
    const { startBootListener } = await import('./observability/boot-listener.js');
    const { httpsServerOptions } = await import('./observability/client-certificate.js');
    listener = await startBootListener({
      port: config.PORT,
      host: '0.0.0.0',
      nats: config.NATS_URL !== undefined,
      https: httpsServerOptions(config),
      requestTimeoutMs: config.REQUEST_TIMEOUT_MS,
    });
    logger.info({ port: listener.port }, 'listening; starting');
  }
  if (listener !== undefined) await loadInSlices();
  const { startGatehouse } = await import('./bootstrap.js');
  const gatehouse = await startGatehouse(config, logger, { listener });
  logger.info({ tracing: tracing !== undefined }, tracing === undefined ? 'tracing off' : 'tracing: exporting spans over OTLP');
  if (cluster.isWorker) {
    process.send?.({ type: WORKER_STARTED });
    // the primary is gone (killed): drain and stop rather than serve unsupervised
    process.once('disconnect', () => process.emit('SIGTERM'));
  }

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) process.exit(1);
    logger.info({ signal }, 'shutting down');
    gatehouse
      .shutdown()
      .then(() => tracing?.shutdown())
      .then(() => {
        logger.info('shut down cleanly');
        logger.flush(() => process.exit(0));
      })
      .catch((error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        logger.flush(() => process.exit(1));
      });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/**
 * The heaviest dependencies and the feature modules, lowest layer first. Importing the
 * application in one go blocks the event loop for a second or more (several on a busy machine),
 * during which the early listener could not answer /health; slice by slice, it answers between
 * them. A name that no longer exists is skipped: the application's own import follows anyway.
 */
const SLICES = [
  '@nestjs/core',
  '@nestjs/microservices',
  '@nestjs/swagger',
  'fastify',
  '@nestjs/platform-fastify',
  './database/database.module.js',
  './messaging/messaging.module.js',
  './observability/observability.module.js',
  './audit/audit.module.js',
  './identity/identity.module.js',
  './session/session.module.js',
  './authz/authz.module.js',
  './authn/authn.module.js',
  './routing/routing.module.js',
  './admin/admin.module.js',
  './limits/limits.module.js',
  './proxy/proxy.module.js',
  './retention/retention.module.js',
  './rebalancing/rebalancing.module.js',
  './forward/forward.module.js',
];

async function loadInSlices(): Promise<void> {
  for (const specifier of SLICES) {
    await import(specifier).catch(() => undefined);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`);
    process.exit(78);
  }
  process.stderr.write(`gatehouse failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
