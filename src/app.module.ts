import { Global, Module, type DynamicModule } from '@nestjs/common';
import { APP_FILTER, APP_GUARD } from '@nestjs/core';
import type { Logger } from 'pino';
import { AdminModule } from './admin/admin.module';
import { AuditModule } from './audit/audit.module';
import { AdminWriteLimitGuard } from './authn/admin-write-limit.guard';
import { AuthnModule } from './authn/authn.module';
import { AuthGuard } from './authz/auth.guard';
import { AuthzModule } from './authz/authz.module';
import { ProblemFilter } from './common/problem.filter';
import { APP_CONFIG, type AppConfig } from './config/config';
import { DatabaseModule } from './database/database.module';
import { ForwardModule } from './forward/forward.module';
import { IdentityModule } from './identity/identity.module';
import { MessagingModule } from './messaging/messaging.module';
import { LOGGER } from './observability/logger';
import { MetricsService } from './observability/metrics.service';
import { ObservabilityModule } from './observability/observability.module';
import { ProxyModule } from './proxy/proxy.module';
import { RetentionModule } from './retention/retention.module';
import { RebalancingModule } from './rebalancing/rebalancing.module';
import { RoutingModule } from './routing/routing.module';
import { SessionModule } from './session/session.module';

export interface AppDependencies {
  config: AppConfig;
  logger: Logger;
  metrics: MetricsService;
}

/** Values built before Nest (config, logger, metrics) so the Fastify pipeline can use them too. */
@Global()
@Module({})
export class CoreModule {
  static register(dependencies: AppDependencies): DynamicModule {
    return {
      module: CoreModule,
      providers: [
        { provide: APP_CONFIG, useValue: dependencies.config },
        { provide: LOGGER, useValue: dependencies.logger },
        { provide: MetricsService, useValue: dependencies.metrics },
      ],
      exports: [APP_CONFIG, LOGGER, MetricsService],
    };
  }
}

@Module({})
export class AppModule {
  static register(dependencies: AppDependencies): DynamicModule {
    return {
      module: AppModule,
      imports: [
        CoreModule.register(dependencies),
        DatabaseModule,
        MessagingModule,
        ObservabilityModule,
        AuditModule,
        IdentityModule,
        SessionModule,
        AuthzModule,
        AuthnModule,
        AdminModule,
        RoutingModule,
        ProxyModule,
        RetentionModule,
        RebalancingModule,
        ForwardModule,
      ],
      providers: [
        // in this order: the caller is authenticated before its admin writes are counted
        { provide: APP_GUARD, useClass: AuthGuard },
        { provide: APP_GUARD, useClass: AdminWriteLimitGuard },
        { provide: APP_FILTER, useClass: ProblemFilter },
      ],
    };
  }
}
