import { Controller, Inject, UseFilters } from '@nestjs/common';
import { GrpcMethod } from '@nestjs/microservices';
import type { Metadata, ServerUnaryCall } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { Requires } from '../common/auth-declaration';
import { LimitedAs } from '../limits/limited-as.decorator';
import { rpcAuthorization } from '../authz/auth.guard';
import { AppError } from '../common/app-error';
import { GrpcExceptionFilter } from '../common/grpc-exception.filter';
import { requestContext } from '../common/request-context';
import { LOGGER } from '../observability/logger';
import { grpcClientCertSubject } from '../observability/client-certificate';
import { logRequest, openRequestContext, recordAuthorization } from '../observability/request-edge';
import { AGGREGATE_TYPE } from './command-json';
import type { SubmitCommandRequest, SubmitCommandResponse } from './command-proto';
import { GrpcUpstreamClient } from './grpc-upstream.client';

function metadataValue(metadata: Metadata, key: string): string | undefined {
  const value = metadata.get(key)[0];
  return value === undefined ? undefined : value.toString();
}

/** Gatehouse's own `aggregate.gateway.v1.CommandService`, forwarded to the tenant's aggregate shard. */
@Controller()
@UseFilters(GrpcExceptionFilter)
export class CommandGrpcController {
  constructor(
    private readonly aggregates: GrpcUpstreamClient,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  @GrpcMethod('CommandService', 'SubmitCommand')
  @Requires('commands.submit', { tenant: 'required', resource: 'aggregate_type', policy: true })
  @LimitedAs('commands', { rpc: true })
  submitCommand(
    request: SubmitCommandRequest,
    metadata: Metadata,
    call: ServerUnaryCall<unknown, unknown>,
  ): Promise<SubmitCommandResponse> {
    const authorization = rpcAuthorization(metadata);
    const context = openRequestContext({
      traceparent: metadataValue(metadata, 'traceparent'),
      tracestate: metadataValue(metadata, 'tracestate'),
      correlationId: metadataValue(metadata, 'x-correlation-id'),
      userAgent: metadataValue(metadata, 'user-agent'),
      clientIp: call.getPeer(),
      clientCertSubject: grpcClientCertSubject(call),
    });
    if (authorization !== undefined) recordAuthorization(context, authorization);
    const rawDeadline = call.getDeadline();
    const deadlineMs = rawDeadline instanceof Date ? rawDeadline.getTime() : rawDeadline;
    return requestContext.run(context, async () => {
      const started = performance.now();
      let outcome = 'OK';
      try {
        if (authorization?.principal === undefined || authorization.tenantId === undefined) {
          throw new AppError('unauthenticated', { logReason: 'no authorization recorded for the call' });
        }
        const errors = [];
        if (!AGGREGATE_TYPE.test(request.aggregate_type ?? '')) {
          errors.push({ path: 'aggregate_type', message: 'must be 1-128 letters, digits, ".", "_" or "-"' });
        }
        for (const field of ['aggregate_id', 'command_id', 'command_type'] as const) {
          if ((request[field] ?? '').length === 0) errors.push({ path: field, message: 'required' });
        }
        if (errors.length > 0) {
          throw new AppError('validation_failed', { detail: `invalid fields: ${errors.map((e) => e.path).join(', ')}`, errors });
        }
        return await this.aggregates.submit({
          request,
          principal: authorization.principal,
          tenantId: authorization.tenantId,
          context,
          deadline: Number.isFinite(deadlineMs) ? deadlineMs : undefined,
        });
      } catch (error) {
        outcome = error instanceof AppError ? error.code : ((error as Error).name ?? 'error');
        throw error;
      } finally {
        logRequest(this.logger, context, {
          method: 'GRPC',
          route: '/aggregate.gateway.v1.CommandService/SubmitCommand',
          status: outcome,
          durationMs: performance.now() - started,
        });
      }
    });
  }
}
