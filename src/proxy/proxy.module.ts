import { Module } from '@nestjs/common';
import { MessagingModule } from '../messaging/messaging.module';
import { SessionModule } from '../session/session.module';
import { AuthzModule } from '../authz/authz.module';
import { LimitsModule } from '../limits/limits.module';
import { RoutingModule } from '../routing/routing.module';
import { CommandGrpcController } from './command-grpc.controller';
import { CommandsController } from './commands.controller';
import { EndpointBreakers } from './endpoint-breakers.service';
import { GrpcUpstreamClient } from './grpc-upstream.client';
import { HttpUpstreamClient } from './http-upstream.client';
import { InternalTokenService } from './internal-token.service';
import { QueryController } from './query.controller';
import { RunnerController } from './runner.controller';
import { SubscriptionAdmission } from './subscription-admission.service';
import { SubscriptionConnectionCap } from './subscription-connection-cap';
import { SubscriptionLimitsCheck } from './subscription-limits.check';
import { SUBSCRIPTION_HANDSHAKE_CHECKS } from './subscription-handshake-checks';
import { SubscriptionRegistry } from './subscription-registry';
import { SubscriptionGateway } from './subscription.gateway';
import { UpstreamSocketConnector } from './upstream-socket.connector';
import { UpstreamTls } from './upstream-tls';

@Module({
  imports: [MessagingModule, SessionModule, AuthzModule, RoutingModule, LimitsModule],
  controllers: [CommandsController, QueryController, RunnerController, CommandGrpcController],
  providers: [
    UpstreamTls,
    InternalTokenService,
    EndpointBreakers,
    HttpUpstreamClient,
    GrpcUpstreamClient,
    UpstreamSocketConnector,
    SubscriptionRegistry,
    SubscriptionConnectionCap,
    SubscriptionLimitsCheck,
    // run in this order at every /v1/subscribe handshake, after authorization: a refused rate
    // takes no connection slot
    {
      provide: SUBSCRIPTION_HANDSHAKE_CHECKS,
      useFactory: (limits: SubscriptionLimitsCheck, cap: SubscriptionConnectionCap) => [limits, cap],
      inject: [SubscriptionLimitsCheck, SubscriptionConnectionCap],
    },
    SubscriptionAdmission,
    SubscriptionGateway,
  ],
  exports: [InternalTokenService, UpstreamTls],
})
export class ProxyModule {}
