import { Module } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module';
import { DatabaseModule } from '../database/database.module';
import { ProxyModule } from '../proxy/proxy.module';
import { RoutingModule } from '../routing/routing.module';
import { ReadinessProbe } from './readiness-probe.service';
import { RebalancingPlanRepository } from './rebalancing-plan.repository';
import { RebalancingController } from './rebalancing.controller';
import { RebalancingService } from './rebalancing.service';

@Module({
  imports: [DatabaseModule, AuditModule, RoutingModule, ProxyModule],
  controllers: [RebalancingController],
  providers: [ReadinessProbe, RebalancingPlanRepository, RebalancingService],
})
export class RebalancingModule {}
