import { Module } from '@nestjs/common';
import type { Logger } from 'pino';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { LOGGER } from '../observability/logger';
import { ClusterEventBus } from './cluster-event-bus';
import { NatsConnectionService } from './nats-connection.service';

@Module({
  providers: [
    {
      // Connected before anything that subscribes is built; with NATS down at boot this
      // waits (retrying) rather than starting a replica that cannot hear revocations.
      provide: NatsConnectionService,
      inject: [APP_CONFIG, LOGGER],
      useFactory: async (config: AppConfig, logger: Logger) => {
        const service = new NatsConnectionService(config, logger);
        await service.start();
        return service;
      },
    },
    ClusterEventBus,
  ],
  exports: [NatsConnectionService, ClusterEventBus],
})
export class MessagingModule {}
