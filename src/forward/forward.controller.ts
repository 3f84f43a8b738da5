import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { All, Controller, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { DelegatedTo } from '../common/auth-declaration';
import { firstHeader } from '../common/header-value';
import { AppError } from '../common/app-error';
import { releaseOnClose } from '../limits/traffic-limit.guard';
import { ForwardDecisionService, type ForwardCredentials, type ForwardDecision, type ForwardOutcome } from './forward-decision.service';
import { readForwardedRequest } from './forwarded-request';

/** How long an edge may reuse a decision (CONTRACT §10). */
const DECISION_CACHE_CONTROL = 'private, max-age=1';
const MAX_LOGGED_PATH = 2048;

function outcomeOf(error: unknown): ForwardOutcome {
  if (!(error instanceof AppError)) return 'invalid';
  switch (error.code) {
    case 'unauthenticated':
    case 'invalid_token':
      return 'unauthenticated';
    case 'rate_limited':
      return 'rate_limited';
    case 'forbidden':
    case 'tenant_forbidden':
      return 'denied';
    default:
      return 'invalid';
  }
}

/**
 * `ANY /v1/authz/forward`: the decision API for nginx `auth_request`, Traefik `ForwardAuth`,
 * Caddy `forward_auth` and Envoy `ext_authz` (CONTRACT §10). The body is ignored; 200 with an
 * empty body and the identity headers, or a problem answer (401/403/400/429).
 */
@ApiTags('forward-auth')
@Controller('v1/authz')
export class ForwardController {
  constructor(private readonly decisions: ForwardDecisionService) {}

  @All('forward')
  @DelegatedTo('forward rules')
  @ApiOperation({ summary: 'Decide a request an edge proxy forwards (nginx auth_request, Traefik ForwardAuth, Caddy forward_auth)' })
  @ApiOkResponse({
    description:
      'allowed: empty body; identity in `x-auth-principal-id`, `x-auth-principal-type`, `x-tenant-id` and an internal `authorization`',
    headers: { 'x-auth-principal-id': { schema: { type: 'string' } }, 'x-auth-principal-type': { schema: { type: 'string' } } },
  })
  /**
   * Answers at once when the decision needs nothing loaded (ForwardDecisionService.decide
   * answers without a promise); otherwise the returned promise settles once it has answered.
   */
  decide(@Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> | undefined {
    const context = request.ctx;
    let decision: ForwardDecision | Promise<ForwardDecision>;
    try {
      const original = readForwardedRequest(request.headers);
      // the path as received, never the query (it may carry secrets)
      context.forwarded = `${original.method} ${original.rawPath.slice(0, MAX_LOGGED_PATH)}`;
      const credentials: ForwardCredentials = {
        authorization: firstHeader(request.headers.authorization),
        tenantHeader: firstHeader(request.headers['x-tenant-id']),
        clientIp: context.clientIp,
        clientCertSubject: context.clientCertSubject,
      };
      decision = this.decisions.decide(original, credentials, context);
    } catch (error) {
      throw this.refused(reply, error);
    }
    if (!(decision instanceof Promise)) {
      this.answer(reply, decision);
      return undefined;
    }
    return decision.then(
      (loaded) => this.answer(reply, loaded),
      (error: unknown) => {
        throw this.refused(reply, error);
      },
    );
  }

  /** 200, empty body, the identity headers; the in-flight slot is held until the answer is out. */
  private answer(reply: FastifyReply, decision: ForwardDecision): void {
    const context = reply.request.ctx;
    void reply.header('cache-control', DECISION_CACHE_CONTROL);
    if (decision.admission.headers.ratelimit !== undefined) void reply.header('ratelimit', decision.admission.headers.ratelimit);
    if (decision.kind === 'public') {
      context.authz = { decision: 'allow', reason: `rule ${decision.rule}: public` };
      this.decisions.count('public');
    } else {
      context.principalId = decision.principal.id;
      context.principalType = decision.principal.type;
      context.tenantId = decision.tenantId;
      context.authz = { decision: 'allow', reason: decision.reason };
      void reply.header('x-auth-principal-id', decision.principal.id);
      void reply.header('x-auth-principal-type', decision.principal.type);
      if (decision.tenantId !== undefined) void reply.header('x-tenant-id', decision.tenantId);
      void reply.header('authorization', `Bearer ${decision.internalToken}`);
      this.decisions.count('allowed');
    }
    releaseOnClose(reply.raw, decision.admission.release);
    void reply.status(200).send();
  }

  /** Counts and logs a refusal; the error goes on to the ProblemFilter. */
  private refused(reply: FastifyReply, error: unknown): unknown {
    const outcome = outcomeOf(error);
    this.decisions.count(error instanceof AppError && error.options.logReason?.startsWith('deny: no forward rule') ? 'no_rule' : outcome);
    // auth_request drops the body: the code travels in a header the edge copies (swarm/edge/nginx.conf)
    if (error instanceof AppError) void reply.header('x-gatehouse-error', error.code);
    if (outcome === 'denied' && error instanceof AppError) {
      reply.request.ctx.authz = { decision: 'deny', reason: error.options.logReason ?? 'deny' };
    }
    return error;
  }
}
