import { Controller, Inject } from '@nestjs/common';
import { GrpcMethod } from '@nestjs/microservices';
import type { Logger } from 'pino';
import { AUTH_DECLARATION, Requires, type AuthDeclaration } from '../common/auth-declaration';
import { LimitedAs } from '../limits/limited-as.decorator';
import { RequestAuthorizer, type AuthorizationResult } from '../authz/request-authorizer.service';
import { AppError } from '../common/app-error';
import { duplicateAuthorizationError } from '../common/authorization-header';
import { grpcStatusError } from '../common/grpc-exception.filter';
import { requestContext, type RequestContext } from '../common/request-context';
import { TrafficLimitGuard, type Admission } from '../limits/traffic-limit.guard';
import { LOGGER } from '../observability/logger';
import { MetricsService } from '../observability/metrics.service';
import { logRequest, openRequestContext, recordAuthorization, recordDenial } from '../observability/request-edge';
import { AGGREGATE_TYPE } from './command-json';
import { MalformedCommand, readCommandRouting, type CommandRouting } from './command-wire';
import type { CallStatus, CommandCall, CommandCallHandler } from './grpc-server';
import { GrpcUpstreamClient, SUBMIT_COMMAND_PATH } from './grpc-upstream.client';

/**
 * Gatehouse's own `aggregate.gateway.v1.CommandService`, forwarded to the tenant's aggregate shard.
 *
 * The server is Gatehouse's node:http2 gRPC server (`grpc-server.ts`): the request bytes go
 * upstream unchanged and the response bytes come back unchanged, without protobuf decoding,
 * re-encoding or a per-call guard, interceptor and rxjs pipeline. What Nest's pipeline did is done
 * here, in the same order: the declaration below (which the route-declaration snapshot reads,
 * and this handler enforces through RequestAuthorizer), the §9 limits (TrafficLimitGuard.admit),
 * validation, the upstream call, the gRPC error mapping and one log line per call.
 */
@Controller()
export class CommandGrpcController implements CommandCallHandler {
  private readonly declaration: Extract<AuthDeclaration, { kind: 'requires' }>;

  constructor(
    private readonly aggregates: GrpcUpstreamClient,
    private readonly authorizer: RequestAuthorizer,
    private readonly limits: TrafficLimitGuard,
    private readonly metrics: MetricsService,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.declaration = Reflect.getMetadata(AUTH_DECLARATION, CommandGrpcController.prototype.submitCommand) as Extract<
      AuthDeclaration,
      { kind: 'requires' }
    >;
  }

  /** The unary handler: `call.request` is the encoded SubmitCommandRequest; the answer is the framed response. */
  @GrpcMethod('CommandService', 'SubmitCommand')
  @Requires('commands.submit', { tenant: 'required', resource: 'aggregate_type', policy: true })
  @LimitedAs('commands')
  submitCommand(call: CommandCall, answer: (error: CallStatus | null, frame?: Buffer) => void): void {
    const context = openRequestContext({
      traceparent: call.metadata('traceparent'),
      tracestate: call.metadata('tracestate'),
      correlationId: call.metadata('x-correlation-id'),
      userAgent: call.metadata('user-agent'),
      clientIp: call.peer,
      clientCertSubject: call.clientCertSubject,
    });
    const started = performance.now();
    requestContext.run(context, () => {
      const outcome: CallOutcome = {
        answered: (frame) => {
          this.finish(context, 'OK', started);
          answer(null, frame);
        },
        refused: (error) => {
          recordDenial(context, error);
          const code = error instanceof AppError ? error.code : ((error as Error | undefined)?.name ?? 'error');
          const status = grpcStatusError(error, this.logger, this.metrics);
          this.finish(context, code, started);
          answer(status);
        },
      };
      try {
        this.handle(call, context, outcome);
      } catch (error) {
        outcome.refused(error);
      }
    });
  }

  /**
   * The checks, then the upstream call, whose end reaches `outcome`. Not an `async` function:
   * when the authorization is in memory (nearly every call) everything up to the upstream
   * stream runs synchronously and a refusal is thrown, so the call's only promise is the
   * upstream call's own (an `async` layer here added a promise, a suspended frame and its
   * resumption per call).
   */
  private handle(call: CommandCall, context: RequestContext, outcome: CallOutcome): void {
    if (call.authorizationCount > 1) throw duplicateAuthorizationError();
    const clientIp = call.address;
    let fields;
    try {
      fields = readCommandRouting(call.request);
    } catch (error) {
      if (!(error instanceof MalformedCommand)) throw error;
      throw new AppError('validation_failed', {
        detail: 'The request message is not a valid SubmitCommandRequest.',
        logReason: error.message,
      });
    }
    const input = {
      declaration: this.declaration,
      authorization: call.metadata('authorization'),
      tenantHeader: call.metadata('x-tenant-id'),
      resource: fields.aggregate_type,
      policy: { method: 'POST', path: SUBMIT_COMMAND_PATH, clientIp },
    };
    // without waiting when the token, the grants and the decision are in memory (as on HTTP)
    const authorization = this.authorizer.authorizeNow(input);
    if (authorization === undefined) {
      this.authorizer.authorize(input).then((loaded) => {
        try {
          this.admitAndForward(call, context, fields, loaded, outcome);
        } catch (error) {
          outcome.refused(error);
        }
      }, outcome.refused);
      return;
    }
    this.admitAndForward(call, context, fields, authorization, outcome);
  }

  /**
   * The §9 limits, the field checks and the upstream call. One reaction on that call releases
   * the in-flight slot and then answers (the slot is free before the answer is written, as a
   * `finally` made it): one promise reaction per call, where a release registered apart was a
   * second reaction and a second derived promise.
   */
  private admitAndForward(
    call: CommandCall,
    context: RequestContext,
    fields: CommandRouting,
    authorization: AuthorizationResult,
    outcome: CallOutcome,
  ): void {
    const clientIp = call.address;
    recordAuthorization(context, authorization);
    const principal = authorization.principal;
    const tenantId = authorization.tenantId;
    if (principal === undefined || tenantId === undefined) {
      throw new AppError('unauthenticated', { logReason: 'no authorization recorded for the call' });
    }
    const admission: Admission = this.limits.admitNow(
      // a gRPC answer carries no RateLimit (CONTRACT §9: admitted HTTP responses do)
      { routeClass: 'commands', principalId: principal.id, tenantId, clientIp, holdsSlot: true, rateLimitHeader: false },
      context,
    );
    let forwarded: Promise<Buffer>;
    try {
      // the lists are built only for a refusal (a valid call allocates nothing here)
      if (
        !AGGREGATE_TYPE.test(fields.aggregate_type) ||
        fields.aggregate_id_bytes === 0 ||
        fields.command_id_bytes === 0 ||
        fields.command_type_bytes === 0
      ) {
        throw invalidFields(fields);
      }
      forwarded = this.aggregates.forward({
        request: call.request,
        frame: call.frame,
        principal,
        tenantId,
        context,
        deadline: call.deadline,
      });
    } catch (error) {
      admission.release();
      throw error;
    }
    const release = admission.release;
    forwarded.then(
      (frame) => {
        release();
        outcome.answered(frame);
      },
      (error) => {
        release();
        outcome.refused(error);
      },
    );
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

/** Where a call's end goes: its framed answer, or the error it is refused with. */
interface CallOutcome {
  answered(frame: Buffer): void;
  refused(error: unknown): void;
}

/** The validation refusal naming every invalid field of a SubmitCommandRequest. */
function invalidFields(fields: CommandRouting): AppError {
  const errors = [];
  if (!AGGREGATE_TYPE.test(fields.aggregate_type)) {
    errors.push({ path: 'aggregate_type', message: 'must be 1-128 letters, digits, ".", "_" or "-"' });
  }
  for (const field of ['aggregate_id', 'command_id', 'command_type'] as const) {
    if (fields[`${field}_bytes`] === 0) errors.push({ path: field, message: 'required' });
  }
  return new AppError('validation_failed', { detail: `invalid fields: ${errors.map((e) => e.path).join(', ')}`, errors });
}
