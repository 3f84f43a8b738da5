import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** proto/ at the project root, from src/proxy (tests) and dist/proxy (build) alike. */
export const COMMAND_PROTO_PATH = path.resolve(__dirname, '..', '..', 'proto', 'aggregate', 'gateway', 'v1', 'command_service.proto');
export const COMMAND_PACKAGE = 'aggregate.gateway.v1';

/**
 * The same decoding on both sides of Gatehouse, so a command passes through unchanged:
 * field names as in the proto, int64 as decimal strings (no precision loss), bytes as Buffers.
 */
export const COMMAND_LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: false, oneofs: true };

export interface CommandEvent {
  event_id?: string;
  event_type?: string;
  version?: string | number;
  payload?: Buffer;
}

export interface SubmitCommandRequest {
  aggregate_type?: string;
  aggregate_id?: string;
  command_id?: string;
  command_type?: string;
  payload?: Buffer;
  expected_version?: string | number;
}

export interface SubmitCommandResponse {
  aggregate_id?: string;
  version?: string | number;
  events?: CommandEvent[];
}

type UnaryCallback<T> = (error: grpc.ServiceError | null, response?: T) => void;

export interface CommandServiceClient extends grpc.Client {
  SubmitCommand(
    request: SubmitCommandRequest,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: UnaryCallback<SubmitCommandResponse>,
  ): grpc.ClientUnaryCall;
}

type CommandServiceConstructor = new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => CommandServiceClient;

let constructorCache: CommandServiceConstructor | undefined;

export function commandServiceClientConstructor(): CommandServiceConstructor {
  if (constructorCache === undefined) {
    const definition = protoLoader.loadSync(COMMAND_PROTO_PATH, COMMAND_LOADER_OPTIONS);
    const loaded = grpc.loadPackageDefinition(definition) as unknown as {
      aggregate: { gateway: { v1: { CommandService: CommandServiceConstructor } } };
    };
    constructorCache = loaded.aggregate.gateway.v1.CommandService;
  }
  return constructorCache;
}
