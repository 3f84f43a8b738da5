import { Module } from '@nestjs/common';
import { ProxyModule } from '../proxy/proxy.module';
import { RoutingModule } from '../routing/routing.module';
import { ReadinessProbe } from './readiness-probe.service';
import { RebalancingPlanRepository } from './rebalancing-plan.repository';
import { RebalancingController } from './rebalancing.controller';
import { RebalancingService } from './rebalancing.service';

@Module({
  imports: [RoutingModule, ProxyModule],
  controllers: [RebalancingController],
  providers: [ReadinessProbe, RebalancingPlanRepository, RebalancingService],
})
export class RebalancingModule {}
