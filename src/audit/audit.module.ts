import { Global, Module } from '@nestjs/common';
import { AuditPublisherService } from './audit-publisher.service';
import { AuditTrailService } from './audit-trail.service';
import { AuditController } from './audit.controller';
import { AuditRepository } from './audit.repository';
import { AuditService } from './audit.service';

@Global()
@Module({
  controllers: [AuditController],
  providers: [AuditService, AuditRepository, AuditTrailService, AuditPublisherService],
  exports: [AuditService],
})
export class AuditModule {}
