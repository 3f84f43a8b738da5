import { Module } from '@nestjs/common';
import { DatabaseModule } from '../database/database.module';
import { MessagingModule } from '../messaging/messaging.module';
import { ObservabilityModule } from '../observability/observability.module';
import { AuditModule } from '../audit/audit.module';
import { RoutingController } from './routing.controller';
import { RoutingWriteService } from './routing-write.service';
import { RoutingService } from './routing.service';

@Module({
  imports: [DatabaseModule, MessagingModule, ObservabilityModule, AuditModule],
  controllers: [RoutingController],
  providers: [RoutingService, RoutingWriteService],
  exports: [RoutingService, RoutingWriteService],
})
export class RoutingModule {}
