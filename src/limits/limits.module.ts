import { Module } from '@nestjs/common';
import { ThrottlerModule } from '@nestjs/throttler';
import { AuditModule } from '../audit/audit.module';
import { AuthzModule } from '../authz/authz.module';
import { DatabaseModule } from '../database/database.module';
import { MessagingModule } from '../messaging/messaging.module';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { LimitPolicies } from './limit-policies.service';
import { LimitsStorageModule } from './limits-storage.module';
import { SharedBudget } from './shared-budget.service';
import { TenantLimitsController } from './tenant-limits.controller';
import { TenantLimitsRepository } from './tenant-limits.repository';
import { TenantLimitsService } from './tenant-limits.service';
import { TokenBucketStorage } from './token-bucket.storage';
import { TrafficLimitGuard } from './traffic-limit.guard';
import { WsMessageLimits } from './ws-message-limits';

/**
 * CONTRACT §9 traffic limits, admitted through @nestjs/throttler: its module with our storage
 * and its headers off, the guard subclass (TrafficLimitGuard) the proxied handlers use.
 */
@Module({
  imports: [
    DatabaseModule,
    AuditModule,
    AuthzModule,
    MessagingModule,
    LimitsStorageModule,
    ThrottlerModule.forRootAsync({
      imports: [LimitsStorageModule],
      inject: [TokenBucketStorage, APP_CONFIG],
      useFactory: (storage: TokenBucketStorage, config: AppConfig) => ({
        storage,
        // the IETF RateLimit headers replace the library's X-RateLimit-*
        setHeaders: false,
        // documentation of the defaults; TrafficLimitGuard resolves per tenant and route class
        throttlers: [
          { name: 'tenant', limit: config.TENANT_RATE_LIMIT.limit, ttl: config.TENANT_RATE_LIMIT.periodMs },
          { name: 'principal', limit: config.PRINCIPAL_RATE_LIMIT.limit, ttl: config.PRINCIPAL_RATE_LIMIT.periodMs },
        ],
      }),
    }),
  ],
  controllers: [TenantLimitsController],
  providers: [LimitPolicies, TrafficLimitGuard, WsMessageLimits, SharedBudget, TenantLimitsRepository, TenantLimitsService],
  exports: [LimitsStorageModule, LimitPolicies, TrafficLimitGuard, WsMessageLimits],
})
export class LimitsModule {}
