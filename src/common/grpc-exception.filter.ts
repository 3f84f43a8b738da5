import { Metadata, status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { MetricsService } from '../observability/metrics.service';
import { AppError } from './app-error';
import { dependencyFailureAsAppError } from './dependency-failure';
import { titleOf } from './error-codes';
import { grpcStatusOf } from './grpc-status';
import { requestContext } from './request-context';

/** What grpc-js sends as the call's status. */
export interface GrpcStatusError {
  code: status;
  details: string;
  metadata: Metadata;
}

/** Upstream codes whose message is the upstream's internals, never the client's business. */
const HIDDEN_UPSTREAM_DETAILS = new Set<number>([status.INTERNAL, status.UNKNOWN, status.DATA_LOSS]);

/** An upstream's own gRPC error reply, relayed with its code and message. */
function relayedStatus(exception: unknown): { grpcCode: number; details: string } | undefined {
  const candidate = exception as { grpcCode?: unknown; details?: unknown } | null;
  if (candidate !== null && typeof candidate === 'object' && typeof candidate.grpcCode === 'number') {
    return { grpcCode: candidate.grpcCode, details: typeof candidate.details === 'string' ? candidate.details : '' };
  }
  return undefined;
}

/**
 * The gRPC edge of the error mapping: AppErrors become the status of `grpcStatusOf` with the
 * contract code in the `gatehouse-error-code` trailer (and `retry-after` when set); upstream
 * replies keep their own status; anything else is INTERNAL without internals. Used by the
 * gRPC server (CommandGrpcServer) for every status it answers.
 */
export function grpcStatusError(raised: unknown, logger: Logger, metrics: MetricsService): GrpcStatusError {
  const dependencyFailure = dependencyFailureAsAppError(raised);
  if (dependencyFailure !== undefined) metrics.dependencyErrors.inc({ dependency: 'database' });
  const exception = dependencyFailure ?? raised;
  const metadata = new Metadata();
  const context = requestContext.get();
  if (context !== undefined) metadata.set('x-request-id', context.requestId);
  const relayed = relayedStatus(exception);
  if (exception instanceof AppError) {
    const detail = exception.options.detail;
    metadata.set('gatehouse-error-code', exception.code);
    for (const [name, value] of Object.entries(exception.options.headers ?? {})) metadata.set(name.toLowerCase(), value);
    if (dependencyFailure !== undefined) {
      logger.warn({ dependency: 'database', reason: exception.options.logReason }, 'dependency unavailable; answered UNAVAILABLE');
    } else logger.info({ code: exception.code, reason: exception.options.logReason }, 'grpc call refused');
    return { code: grpcStatusOf(exception.code), details: detail ?? titleOf(exception.code), metadata };
  }
  if (relayed !== undefined) {
    if (HIDDEN_UPSTREAM_DETAILS.has(relayed.grpcCode)) {
      // an upstream's internal failure may describe its internals (stack, SQL, hosts): the
      // client gets the code with a generic message, the log the upstream's own words
      logger.warn({ grpc_code: status[relayed.grpcCode], upstream_details: relayed.details }, 'upstream failed internally');
      return { code: relayed.grpcCode, details: 'upstream error', metadata };
    }
    return { code: relayed.grpcCode, details: relayed.details, metadata };
  }
  logger.error({ err: exception }, 'unhandled error in a gRPC call');
  return { code: status.INTERNAL, details: titleOf('internal_error'), metadata };
}
