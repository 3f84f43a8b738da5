import fs from 'node:fs';
import { ServerCredentials, type Server, type ServiceDefinition, type handleUnaryCall } from '@grpc/grpc-js';
import { Transport, type GrpcOptions } from '@nestjs/microservices';
import type { AppConfig } from '../config/config';
import { COMMAND_LOADER_OPTIONS, COMMAND_PACKAGE, COMMAND_PROTO_PATH } from './command-proto';
import { SUBMIT_COMMAND_PATH } from './grpc-upstream.client';

const COMMAND_SERVICE = `${COMMAND_PACKAGE}.CommandService`;
const passBytes = (bytes: Buffer): Buffer => bytes;

/** CommandService with identity serializers: handlers see and answer the encoded messages. */
const RAW_COMMAND_SERVICE: ServiceDefinition = {
  SubmitCommand: {
    path: SUBMIT_COMMAND_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: passBytes,
    requestDeserialize: passBytes,
    responseSerialize: passBytes,
    responseDeserialize: passBytes,
    originalName: 'submitCommand',
  },
};

/** What serves SubmitCommand as raw bytes (CommandGrpcController). */
export interface RawCommandHandler {
  submitCommand: handleUnaryCall<Buffer, Buffer>;
}

/**
 * The gRPC server Gatehouse runs on GRPC_PORT: `aggregate.gateway.v1.CommandService`. Nest's
 * gRPC transport creates, binds and shuts down the server; with a `raw` handler, CommandService
 * is registered on it as a pass-through (identity serializers) instead of through Nest's
 * per-call pipeline: the service is taken out of the package definition Nest binds, and added
 * to the same grpc-js server directly.
 */
export function commandGrpcServerOptions(port: number, config?: AppConfig, raw?: RawCommandHandler): GrpcOptions {
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
      // channelz (grpc-js's introspection service, which Gatehouse does not expose) counts every call
      channelOptions: { 'grpc.enable_channelz': 0 },
      ...(raw === undefined
        ? {}
        : {
            onLoadPackageDefinition: (definition: Record<string, unknown>, server: Server) => {
              delete definition[COMMAND_SERVICE];
              server.addService(RAW_COMMAND_SERVICE, { SubmitCommand: raw.submitCommand.bind(raw) });
            },
          }),
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
