import path from 'node:path';
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
