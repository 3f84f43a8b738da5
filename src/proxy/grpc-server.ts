import { Transport, type GrpcOptions } from '@nestjs/microservices';
import { COMMAND_LOADER_OPTIONS, COMMAND_PACKAGE, COMMAND_PROTO_PATH } from './command-proto';

/** The gRPC server Gatehouse runs on GRPC_PORT: `aggregate.gateway.v1.CommandService`. */
export function commandGrpcServerOptions(port: number): GrpcOptions {
  return {
    transport: Transport.GRPC,
    options: {
      package: COMMAND_PACKAGE,
      protoPath: COMMAND_PROTO_PATH,
      url: `0.0.0.0:${port}`,
      loader: COMMAND_LOADER_OPTIONS as NonNullable<GrpcOptions['options']['loader']>,
      // in-flight calls finish at shutdown, like HTTP requests
      gracefulShutdown: true,
      maxReceiveMessageLength: 4 * 1024 * 1024,
    },
  };
}
