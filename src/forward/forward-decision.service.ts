import { Injectable } from '@nestjs/common';
import { Counter } from 'prom-client';
import { AppError } from '../common/app-error';
import { RequestAuthorizer, type AuthorizationInput, type AuthorizationResult } from '../authz/request-authorizer.service';
import type { AuthDeclaration } from '../common/auth-declaration';
import type { RequestContext } from '../common/request-context';
import { MetricsService } from '../observability/metrics.service';
import { InternalTokenService } from '../proxy/internal-token.service';
import { RoutingService } from '../routing/routing.service';
import type { Principal } from '../session/principal';
import { ForwardLimits, type ForwardAdmission } from './forward-limits';
import { matchRule, type RuleMatch } from './forward-rule-matcher';
import type { ForwardedRequest } from './forwarded-request';

type RequiresDeclaration = Extract<AuthDeclaration, { kind: 'requires' }>;

export interface ForwardCredentials {
  /** the original request's Authorization header; cookies are never read */
  authorization?: string;
  /** the original request's x-tenant-id */
  tenantHeader?: string;
  clientIp: string;
  /** the client certificate the edge verified (CONTRACT §13), for the policy hook */
  clientCertSubject?: string;
}

export type ForwardDecision =
  | { kind: 'public'; rule: number; admission: ForwardAdmission }
  | {
      kind: 'allowed';
      rule: number;
      principal: Principal;
      tenantId?: string;
      internalToken: string;
      reason: string;
      admission: ForwardAdmission;
    };

export type ForwardOutcome = 'allowed' | 'public' | 'no_rule' | 'denied' | 'unauthenticated' | 'invalid' | 'rate_limited';

/**
 * "May this request pass?" (CONTRACT §10): the first matching rule decides; no rule is a
 * deny. A protected rule goes through the same RequestAuthorizer as the built-in proxies
 * (token, revocation, x-tenant-id rules, decision engine), then the limits, then an internal
 * token for the service behind the proxy (`aud` "forward", 60 s).
 */
@Injectable()
export class ForwardDecisionService {
  private readonly decisions: Counter<'outcome'>;

  constructor(
    private readonly routing: RoutingService,
    private readonly authorizer: RequestAuthorizer,
    private readonly tokens: InternalTokenService,
    private readonly limits: ForwardLimits,
    metrics: MetricsService,
  ) {
    this.decisions = new Counter({
      name: 'gatehouse_forward_decisions_total',
      help: 'Forward-auth decisions by outcome (route class forward)',
      labelNames: ['outcome'] as const,
      registers: [metrics.registry],
    });
  }

  count(outcome: ForwardOutcome): void {
    this.decisions.inc({ outcome });
  }

  /**
   * The decision: at once when everything it needs is in memory (a token that verified before,
   * the principal's grants, no policy hook to ask, a reusable internal token), otherwise a
   * promise of it. Each step runs once: an authorization made from memory is kept when only the
   * internal token still has to be signed, and the limits are taken once the rest is known.
   * Refusals throw (at once, or through the promise) the same errors in the same order.
   */
  decide(
    request: ForwardedRequest,
    credentials: ForwardCredentials,
    context: RequestContext | undefined,
  ): ForwardDecision | Promise<ForwardDecision> {
    const match = this.ruleFor(request);
    if (match.rule.public) return this.publicDecision(match.index, credentials, context);
    const input = this.authorizationInput(match, request, credentials);
    const result = this.authorizer.authorizeNow(input);
    if (result === undefined) {
      return this.authorizer.authorize(input).then((loaded) => this.admitAndMint(match.index, loaded, credentials, context));
    }
    const principal = result.principal!;
    const internalToken = this.tokens.mintNow('forward', principal, result.tenantId);
    if (internalToken === undefined) return this.admitAndMint(match.index, result, credentials, context);
    const admission = this.limits.admit({ principal, tenantId: result.tenantId, clientIp: credentials.clientIp }, context);
    return allowed(match.index, principal, result, internalToken, admission);
  }

  /** The limits, then a freshly signed internal token (the slot is given back if signing fails). */
  private async admitAndMint(
    rule: number,
    result: AuthorizationResult,
    credentials: ForwardCredentials,
    context: RequestContext | undefined,
  ): Promise<ForwardDecision> {
    const principal = result.principal!;
    const admission = this.limits.admit({ principal, tenantId: result.tenantId, clientIp: credentials.clientIp }, context);
    try {
      const internalToken = await this.tokens.mint('forward', principal, result.tenantId);
      return allowed(rule, principal, result, internalToken, admission);
    } catch (error) {
      admission.release();
      throw error;
    }
  }

  /** The first matching rule; none is a deny. */
  private ruleFor(request: ForwardedRequest): RuleMatch {
    const match = matchRule(this.routing.forwardRules().rules, request);
    if (match === undefined) {
      throw new AppError('forbidden', {
        logReason: `deny: no forward rule matches ${request.method} ${request.host ?? '-'} ${request.path}`,
      });
    }
    return match;
  }

  private publicDecision(rule: number, credentials: ForwardCredentials, context: RequestContext | undefined): ForwardDecision {
    return { kind: 'public', rule, admission: this.limits.admit({ clientIp: credentials.clientIp }, context) };
  }

  private authorizationInput(
    { rule, resource }: RuleMatch,
    request: ForwardedRequest,
    credentials: ForwardCredentials,
  ): AuthorizationInput & { declaration: RequiresDeclaration } {
    return {
      // the policy hook (§13) sees the original request, its path as normalised here
      declaration: { kind: 'requires', right: rule.right!, tenant: rule.tenant === 'none' ? 'none' : 'required', policy: true },
      authorization: credentials.authorization,
      tenantHeader: credentials.tenantHeader,
      resource,
      policy: {
        method: request.method,
        path: `/${request.segments.map((segment) => encodeURIComponent(segment)).join('/')}`,
        clientIp: credentials.clientIp,
        clientCertSubject: credentials.clientCertSubject,
      },
    };
  }
}

function allowed(
  rule: number,
  principal: Principal,
  result: AuthorizationResult,
  internalToken: string,
  admission: ForwardAdmission,
): ForwardDecision {
  return {
    kind: 'allowed',
    rule,
    principal,
    tenantId: result.tenantId,
    internalToken,
    reason: `rule ${rule}: ${result.decision?.reason ?? 'allow'}`,
    admission,
  };
}
