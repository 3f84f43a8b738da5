import { Controller, Inject } from '@nestjs/common';
import { GrpcMethod } from '@nestjs/microservices';
import type { Metadata, sendUnaryData, ServerUnaryCall } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { AUTH_DECLARATION, Requires, type AuthDeclaration } from '../common/auth-declaration';
import { LimitedAs } from '../limits/limited-as.decorator';
import { grpcPeerAddress } from '../authz/auth.guard';
import { RequestAuthorizer } from '../authz/request-authorizer.service';
import { AppError } from '../common/app-error';
import { duplicateAuthorizationError } from '../common/authorization-header';
import { grpcStatusError } from '../common/grpc-exception.filter';
import { requestContext, type RequestContext } from '../common/request-context';
import { TrafficLimitGuard, type Admission } from '../limits/traffic-limit.guard';
import { LOGGER } from '../observability/logger';
import { MetricsService } from '../observability/metrics.service';
import { grpcClientCertSubject } from '../observability/client-certificate';
import { logRequest, openRequestContext, recordAuthorization, recordDenial } from '../observability/request-edge';
import { AGGREGATE_TYPE } from './command-json';
import { MalformedCommand, readCommandFields } from './command-wire';
import { GrpcUpstreamClient, SUBMIT_COMMAND_PATH } from './grpc-upstream.client';

function metadataValue(metadata: Metadata, key: string): string | undefined {
  const value = metadata.get(key)[0];
  return value === undefined ? undefined : value.toString();
}

/**
 * Gatehouse's own `aggregate.gateway.v1.CommandService`, forwarded to the tenant's aggregate shard.
 *
 * The server is @nestjs/microservices' gRPC transport (bootstrap, credentials, graceful shutdown),
 * but SubmitCommand is registered on it as a raw grpc-js handler with identity serializers
 * (`grpc-server.ts`): the request bytes go upstream unchanged and the response bytes come back
 * unchanged, without protobuf decoding, re-encoding or Nest's per-call guard, interceptor and
 * rxjs pipeline, which together were most of the call's CPU (profiled under `npm run bench:proxy`).
 * What that pipeline did is done here, in the same order: the declaration below (which the
 * route-declaration snapshot reads, and this handler enforces through RequestAuthorizer), the
 * §9 limits (TrafficLimitGuard.admit), validation, the upstream call, the gRPC error mapping and
 * one log line per call.
 */
@Controller()
export class CommandGrpcController {
  private readonly declaration: AuthDeclaration;

  constructor(
    private readonly aggregates: GrpcUpstreamClient,
    private readonly authorizer: RequestAuthorizer,
    private readonly limits: TrafficLimitGuard,
    private readonly metrics: MetricsService,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.declaration = Reflect.getMetadata(AUTH_DECLARATION, CommandGrpcController.prototype.submitCommand) as AuthDeclaration;
  }

  /** The grpc-js unary handler: `call.request` is the encoded SubmitCommandRequest. */
  @GrpcMethod('CommandService', 'SubmitCommand')
  @Requires('commands.submit', { tenant: 'required', resource: 'aggregate_type', policy: true })
  @LimitedAs('commands', { rpc: true })
  submitCommand(call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>): void {
    const metadata = call.metadata;
    const clientIp = grpcPeerAddress(call.getPeer());
    const context = openRequestContext({
      traceparent: metadataValue(metadata, 'traceparent'),
      tracestate: metadataValue(metadata, 'tracestate'),
      correlationId: metadataValue(metadata, 'x-correlation-id'),
      userAgent: metadataValue(metadata, 'user-agent'),
      clientIp: call.getPeer(),
      clientCertSubject: grpcClientCertSubject(call),
    });
    const started = performance.now();
    requestContext.run(context, () => {
      this.handle(call, context, clientIp).then(
        (response) => {
          this.finish(context, 'OK', started);
          callback(null, response);
        },
        (error: unknown) => {
          recordDenial(context, error);
          const outcome = error instanceof AppError ? error.code : ((error as Error | undefined)?.name ?? 'error');
          const answer = grpcStatusError(error, this.logger, this.metrics);
          this.finish(context, outcome, started);
          callback(answer);
        },
      );
    });
  }

  private async handle(call: ServerUnaryCall<Buffer, Buffer>, context: RequestContext, clientIp: string): Promise<Buffer> {
    const metadata = call.metadata;
    if (metadata.get('authorization').length > 1) throw duplicateAuthorizationError();
    let fields;
    try {
      fields = readCommandFields(call.request);
    } catch (error) {
      if (!(error instanceof MalformedCommand)) throw error;
      throw new AppError('validation_failed', {
        detail: 'The request message is not a valid SubmitCommandRequest.',
        logReason: error.message,
      });
    }
    const authorization = await this.authorizer.authorize({
      declaration: this.declaration,
      authorization: metadataValue(metadata, 'authorization'),
      tenantHeader: metadataValue(metadata, 'x-tenant-id'),
      resource: fields.aggregate_type,
      policy: { method: 'POST', path: SUBMIT_COMMAND_PATH, clientIp },
    });
    recordAuthorization(context, authorization);
    const principal = authorization.principal;
    const tenantId = authorization.tenantId;
    if (principal === undefined || tenantId === undefined) {
      throw new AppError('unauthenticated', { logReason: 'no authorization recorded for the call' });
    }
    const admission: Admission = this.limits.admitNow(
      { routeClass: 'commands', principalId: principal.id, tenantId, clientIp, holdsSlot: true },
      context,
    );
    try {
      const errors = [];
      if (!AGGREGATE_TYPE.test(fields.aggregate_type)) {
        errors.push({ path: 'aggregate_type', message: 'must be 1-128 letters, digits, ".", "_" or "-"' });
      }
      for (const field of ['aggregate_id', 'command_id', 'command_type'] as const) {
        if (fields[field].length === 0) errors.push({ path: field, message: 'required' });
      }
      if (errors.length > 0) {
        throw new AppError('validation_failed', { detail: `invalid fields: ${errors.map((e) => e.path).join(', ')}`, errors });
      }
      const rawDeadline = call.getDeadline();
      const deadlineMs = rawDeadline instanceof Date ? rawDeadline.getTime() : rawDeadline;
      return await this.aggregates.forward({
        request: call.request,
        principal,
        tenantId,
        context,
        deadline: Number.isFinite(deadlineMs) ? deadlineMs : undefined,
      });
    } finally {
      admission.release();
    }
  }

  private finish(context: RequestContext, outcome: string, started: number): void {
    logRequest(this.logger, context, {
      method: 'GRPC',
      route: SUBMIT_COMMAND_PATH,
      status: outcome,
      durationMs: performance.now() - started,
    });
  }
}
