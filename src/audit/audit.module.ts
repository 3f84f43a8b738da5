import { Module } from '@nestjs/common';
import { DatabaseModule } from '../database/database.module';
import { MessagingModule } from '../messaging/messaging.module';
import { AuditPublisherService } from './audit-publisher.service';
import { AuditTrailService } from './audit-trail.service';
import { AuditController } from './audit.controller';
import { AuditRepository } from './audit.repository';
import { AuditService } from './audit.service';

@Module({
  imports: [DatabaseModule, MessagingModule],
  controllers: [AuditController],
  providers: [AuditService, AuditRepository, AuditTrailService, AuditPublisherService],
  exports: [AuditService, AuditRepository],
})
export class AuditModule {}
