import type { INestApplicationContext } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../common/app-error';
import { AUTH_DECLARATION, type AuthDeclaration } from '../common/auth-declaration';
import type { FastRouteHandler, FastRouteKey } from '../common/fast-routes';
import { ZodValidationPipe } from '../common/zod-validation.pipe';
import { RequestAuthorizer, type AuthorizationInput, type AuthorizationResult } from '../authz/request-authorizer.service';
import { ROUTE_CLASS, type RouteClass } from '../limits/route-class';
import { releaseOnClose, TrafficLimitGuard } from '../limits/traffic-limit.guard';
import { commandBodySchema } from './command-json';
import { CommandsController } from './commands.controller';
import { QueryController } from './query.controller';
import { firstHeader } from '../common/header-value';

/** The proxied HTTP routes Fastify serves through ProxyFastPath rather than Nest's router. */
export const PROXY_FAST_ROUTES = [
  'POST /v1/query/:view_type',
  'POST /v1/commands/:aggregate_type/:aggregate_id',
] as const satisfies readonly FastRouteKey[];

type RequiresDeclaration = Extract<AuthDeclaration, { kind: 'requires' }>;

interface RouteRules {
  declaration: RequiresDeclaration;
  routeClass: RouteClass;
}

/** What the controller method declares (`@Requires`, `@LimitedAs`): the rules are read from the route, not restated. */
function rulesOf(handler: object): RouteRules {
  const declaration = Reflect.getMetadata(AUTH_DECLARATION, handler) as AuthDeclaration | undefined;
  const routeClass = Reflect.getMetadata(ROUTE_CLASS, handler) as RouteClass | undefined;
  if (declaration?.kind !== 'requires' || routeClass === undefined) {
    throw new Error('a fast proxied route must declare @Requires and @LimitedAs');
  }
  return { declaration, routeClass };
}

const commandBody = new ZodValidationPipe(commandBodySchema);

/**
 * The proxied HTTP routes (`POST /v1/query/{view_type}`, `POST /v1/commands/{type}/{id}`) in one
 * function each, called by Fastify directly (common/fast-routes.ts): what the global AuthGuard
 * and TrafficLimitGuard do for them, in the same order and with the same errors, then the
 * controller's own method. Everything on the way is in memory: a token that verified before
 * (RequestAuthorizer.authorizeNow), the principal's cached decision, the limits' buckets. Only a
 * miss (first use of a token or of a principal's grants, or a policy hook to ask) waits.
 * Errors go to Fastify's error handler, which is Nest's: the same ProblemFilter answers them.
 */
export class ProxyFastPath {
  private readonly queryRules = rulesOf(QueryController.prototype.query);
  private readonly commandRules = rulesOf(CommandsController.prototype.submit);

  constructor(
    private readonly authorizer: RequestAuthorizer,
    private readonly limits: TrafficLimitGuard,
    private readonly queries: QueryController,
    private readonly commands: CommandsController,
  ) {}

  static of(app: INestApplicationContext): ProxyFastPath {
    return new ProxyFastPath(app.get(RequestAuthorizer), app.get(TrafficLimitGuard), app.get(QueryController), app.get(CommandsController));
  }

  handlers(): ReadonlyMap<FastRouteKey, FastRouteHandler> {
    return new Map<FastRouteKey, FastRouteHandler>([
      [PROXY_FAST_ROUTES[0], (request, reply) => this.query(request, reply)],
      [PROXY_FAST_ROUTES[1], (request, reply) => this.command(request, reply)],
    ]);
  }

  private async query(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const viewType = (request.params as { view_type: string }).view_type;
    // as Nest's adapter does: an empty route parameter is no match
    if (viewType === '') {
      reply.callNotFound();
      return reply;
    }
    const pending = this.authorizeAndAdmit(request, reply, this.queryRules, viewType);
    if (pending !== undefined) await pending;
    await this.queries.query(viewType, request, reply);
    return reply;
  }

  private async command(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const params = request.params as { aggregate_type: string; aggregate_id: string };
    if (params.aggregate_type === '' || params.aggregate_id === '') {
      reply.callNotFound();
      return reply;
    }
    const pending = this.authorizeAndAdmit(request, reply, this.commandRules, params.aggregate_type);
    if (pending !== undefined) await pending;
    // Nest ran the body pipe after the guards
    const body = commandBody.transform(request.body);
    const result = await this.commands.submit(params.aggregate_type, params.aggregate_id, body, request);
    return reply.code(200).send(result);
  }

  /**
   * AuthGuard then TrafficLimitGuard, without a promise when everything is in memory
   * (undefined then); a promise when something had to be loaded.
   */
  private authorizeAndAdmit(request: FastifyRequest, reply: FastifyReply, rules: RouteRules, resource: string): Promise<void> | undefined {
    const { headers } = request;
    const input: AuthorizationInput & { declaration: RequiresDeclaration } = {
      declaration: rules.declaration,
      authorization: firstHeader(headers.authorization),
      tenantHeader: firstHeader(headers['x-tenant-id']),
      resource,
    };
    let result: AuthorizationResult | undefined;
    try {
      result = this.authorizer.authorizeNow(input);
    } catch (error) {
      throw this.denied(request, error);
    }
    if (result !== undefined) {
      this.admit(request, reply, rules.routeClass, result);
      return undefined;
    }
    const { ctx } = request;
    input.policy = { method: request.method, path: request.url, clientIp: ctx.clientIp, clientCertSubject: ctx.clientCertSubject };
    return this.authorizer.authorize(input).then(
      (loaded) => this.admit(request, reply, rules.routeClass, loaded),
      (error: unknown) => {
        throw this.denied(request, error);
      },
    );
  }

  /** What AuthGuard records of an allowed call, then TrafficLimitGuard's admission. */
  private admit(request: FastifyRequest, reply: FastifyReply, routeClass: RouteClass, result: AuthorizationResult): void {
    const { ctx } = request;
    const { principal } = result;
    if (principal !== undefined) {
      request.principal = principal;
      ctx.principalId = principal.id;
      ctx.principalType = principal.type;
    }
    if (result.tenantId !== undefined) ctx.tenantId = result.tenantId;
    if (result.decision !== undefined) ctx.authz = result.decision;
    const admission = this.limits.admitNow(
      { routeClass, principalId: principal?.id, tenantId: ctx.tenantId, clientIp: ctx.clientIp, holdsSlot: true },
      ctx,
    );
    if (admission.headers.ratelimit !== undefined) reply.header('ratelimit', admission.headers.ratelimit);
    releaseOnClose(reply.raw, admission.release);
  }

  /** A refusal by policy is logged with its reason, as AuthGuard does. */
  private denied(request: FastifyRequest, error: unknown): unknown {
    if (error instanceof AppError && (error.code === 'forbidden' || error.code === 'tenant_forbidden')) {
      request.ctx.authz = { decision: 'deny', reason: error.options.logReason ?? 'deny' };
    }
    return error;
  }
}
