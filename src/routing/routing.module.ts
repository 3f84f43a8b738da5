import { Module } from '@nestjs/common';
import { RoutingController } from './routing.controller';
import { RoutingWriteService } from './routing-write.service';
import { RoutingService } from './routing.service';

@Module({
  controllers: [RoutingController],
  providers: [RoutingService, RoutingWriteService],
  exports: [RoutingService, RoutingWriteService],
})
export class RoutingModule {}
