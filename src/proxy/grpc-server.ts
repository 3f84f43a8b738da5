import fs from 'node:fs';
import { ServerCredentials } from '@grpc/grpc-js';
import { Transport, type GrpcOptions } from '@nestjs/microservices';
import type { AppConfig } from '../config/config';
import { COMMAND_LOADER_OPTIONS, COMMAND_PACKAGE, COMMAND_PROTO_PATH } from './command-proto';

/** The gRPC server Gatehouse runs on GRPC_PORT: `aggregate.gateway.v1.CommandService`. */
export function commandGrpcServerOptions(port: number, config?: AppConfig): GrpcOptions {
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
      ...(config === undefined ? {} : { credentials: grpcServerCredentials(config) }),
    },
  };
}

/** CONTRACT §13: gRPC over TLS with TLS_CERT_FILE/TLS_KEY_FILE; client certificates as on HTTP. */
export function grpcServerCredentials(config: AppConfig): ServerCredentials {
  if (config.TLS_CERT_FILE === undefined || config.TLS_KEY_FILE === undefined) return ServerCredentials.createInsecure();
  return ServerCredentials.createSsl(
    config.TLS_CLIENT_CA_FILE === undefined ? null : fs.readFileSync(config.TLS_CLIENT_CA_FILE),
    [{ cert_chain: fs.readFileSync(config.TLS_CERT_FILE), private_key: fs.readFileSync(config.TLS_KEY_FILE) }],
    config.TLS_CLIENT_CERT_REQUIRED,
  );
}
