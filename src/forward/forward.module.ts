import { Module } from '@nestjs/common';
import { AuthzModule } from '../authz/authz.module';
import { LimitsModule } from '../limits/limits.module';
import { ProxyModule } from '../proxy/proxy.module';
import { RoutingModule } from '../routing/routing.module';
import { ForwardController } from './forward.controller';
import { ForwardDecisionService } from './forward-decision.service';
import { ForwardLimits } from './forward-limits';

/** The decision API for proxies that carry the traffic themselves (CONTRACT §10). */
@Module({
  imports: [AuthzModule, RoutingModule, ProxyModule, LimitsModule],
  controllers: [ForwardController],
  providers: [ForwardDecisionService, ForwardLimits],
})
export class ForwardModule {}
