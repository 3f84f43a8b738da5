import { Module } from '@nestjs/common';
import { RoutingModule } from '../routing/routing.module';
import { CommandGrpcController } from './command-grpc.controller';
import { CommandsController } from './commands.controller';
import { EndpointBreakers } from './endpoint-breakers.service';
import { GrpcUpstreamClient } from './grpc-upstream.client';
import { HttpUpstreamClient } from './http-upstream.client';
import { InternalTokenService } from './internal-token.service';
import { QueryController } from './query.controller';
import { RunnerController } from './runner.controller';
import { SubscriptionRegistry } from './subscription-registry';
import { SubscriptionRelay } from './subscription-relay.service';
import { UpstreamSocketConnector } from './upstream-socket.connector';

@Module({
  imports: [RoutingModule],
  controllers: [CommandsController, QueryController, RunnerController, CommandGrpcController],
  providers: [
    InternalTokenService,
    EndpointBreakers,
    HttpUpstreamClient,
    GrpcUpstreamClient,
    UpstreamSocketConnector,
    SubscriptionRegistry,
    SubscriptionRelay,
  ],
})
export class ProxyModule {}
