import { status } from '@grpc/grpc-js';
import { z } from 'zod';
import { AppError } from '../common/app-error';
import type { ErrorCode } from '../common/error-codes';
import type { SubmitCommandRequest, SubmitCommandResponse } from './command-proto';
import { HopFailure, UpstreamGrpcError } from './upstream-failure';

/** Body of `POST /v1/commands/{aggregate_type}/{aggregate_id}` (CONTRACT §7). */
export const commandBodySchema = z.object({
  command_id: z.string().min(1).max(256),
  command_type: z.string().min(1).max(256),
  payload: z.unknown().optional(),
  expected_version: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
});
export type CommandBody = z.infer<typeof commandBodySchema>;

export const AGGREGATE_TYPE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const MAX_AGGREGATE_ID = 256;

export function validateTarget(aggregateType: string, aggregateId: string): void {
  const errors = [];
  if (!AGGREGATE_TYPE.test(aggregateType)) {
    errors.push({ path: 'aggregate_type', message: 'must be 1-128 letters, digits, ".", "_" or "-"' });
  }
  if (aggregateId.length === 0 || aggregateId.length > MAX_AGGREGATE_ID) {
    errors.push({ path: 'aggregate_id', message: 'must be 1-256 characters' });
  }
  if (errors.length > 0) throw new AppError('validation_failed', { detail: 'The request has invalid fields.', errors });
}

export function toGrpcRequest(aggregateType: string, aggregateId: string, body: CommandBody): SubmitCommandRequest {
  const request: SubmitCommandRequest = {
    aggregate_type: aggregateType,
    aggregate_id: aggregateId,
    command_id: body.command_id,
    command_type: body.command_type,
    payload: Buffer.from(JSON.stringify(body.payload ?? null), 'utf8'),
  };
  if (body.expected_version !== undefined) request.expected_version = String(body.expected_version);
  return request;
}

function parsePayload(payload: Buffer | undefined): unknown {
  if (payload === undefined || payload.length === 0) return null;
  try {
    return JSON.parse(payload.toString('utf8'));
  } catch {
    throw new HopFailure('unavailable', 'sent', 'upstream event payload is not JSON').toAppError();
  }
}

/** The gRPC response as JSON: versions as numbers, payloads as parsed JSON values. */
/** The aggregate's answer as JSON (CONTRACT §7); `payload` is the event's JSON, or base64 text when it is not JSON. */
export const commandResultSchema = z
  .object({
    aggregate_id: z.string(),
    version: z.number().int(),
    events: z.array(z.object({ event_id: z.string(), event_type: z.string(), version: z.number().int(), payload: z.unknown() })),
  })
  .meta({ id: 'CommandResult' });
export type CommandResult = z.infer<typeof commandResultSchema>;

export function toJsonResponse(response: SubmitCommandResponse): CommandResult {
  return {
    aggregate_id: response.aggregate_id ?? '',
    version: Number(response.version ?? 0),
    events: (response.events ?? []).map((event) => ({
      event_id: event.event_id ?? '',
      event_type: event.event_type ?? '',
      version: Number(event.version ?? 0),
      payload: parsePayload(event.payload),
    })),
  };
}

/** An upstream's gRPC error reply as seen by an HTTP client; the upstream's message is the detail. */
export function upstreamReplyToAppError(error: UpstreamGrpcError): AppError {
  let code: ErrorCode;
  switch (error.grpcCode) {
    case status.INVALID_ARGUMENT:
    case status.OUT_OF_RANGE:
      code = 'validation_failed';
      break;
    case status.NOT_FOUND:
      code = 'not_found';
      break;
    case status.ALREADY_EXISTS:
    case status.ABORTED:
    case status.FAILED_PRECONDITION:
      code = 'conflict';
      break;
    case status.PERMISSION_DENIED:
      code = 'forbidden';
      break;
    case status.RESOURCE_EXHAUSTED:
      code = 'rate_limited';
      break;
    default:
      // the upstream refused our token, lacks the method, or failed internally: a bad hop
      return new AppError('upstream_unavailable', {
        logReason: `upstream replied ${status[error.grpcCode] ?? error.grpcCode}: ${error.details}`,
      });
  }
  return new AppError(code, {
    detail: error.details.slice(0, 500) || undefined,
    headers: code === 'rate_limited' ? { 'retry-after': '1' } : undefined,
    logReason: `upstream replied ${status[error.grpcCode]}`,
  });
}
