import 'reflect-metadata';
import { ConfigError, loadConfig } from './config/config';
import { startGatehouse } from './bootstrap';
import { createLogger } from './observability/logger';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(78);
    }
    throw error;
  }
  const logger = createLogger(config.LOG_LEVEL);
  const gatehouse = await startGatehouse(config, logger);

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) process.exit(1);
    logger.info({ signal }, 'shutting down');
    gatehouse
      .shutdown()
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

main().catch((error: unknown) => {
  process.stderr.write(`gatehouse failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
