import { Injectable } from '@nestjs/common';
import { Counter } from 'prom-client';
import { AppError } from '../common/app-error';
import { RequestAuthorizer } from '../authz/request-authorizer.service';
import { MetricsService } from '../observability/metrics.service';
import { InternalTokenService } from '../proxy/internal-token.service';
import { RoutingService } from '../routing/routing.service';
import type { Principal } from '../session/principal';
import { ForwardLimits, type ForwardAdmission } from './forward-limits';
import { matchRule } from './forward-rule-matcher';
import type { ForwardedRequest } from './forwarded-request';

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

  async decide(request: ForwardedRequest, credentials: ForwardCredentials): Promise<ForwardDecision> {
    const match = matchRule(this.routing.forwardRules().rules, request);
    if (match === undefined) {
      throw new AppError('forbidden', {
        logReason: `deny: no forward rule matches ${request.method} ${request.host ?? '-'} ${request.path}`,
      });
    }
    const { rule, index } = match;
    if (rule.public) {
      const admission = await this.limits.admit({ clientIp: credentials.clientIp });
      return { kind: 'public', rule: index, admission };
    }
    const result = await this.authorizer.authorize({
      // the policy hook (§13) sees the original request, its path as normalised here
      declaration: { kind: 'requires', right: rule.right!, tenant: rule.tenant === 'none' ? 'none' : 'required', policy: true },
      authorization: credentials.authorization,
      tenantHeader: credentials.tenantHeader,
      resource: match.resource,
      policy: {
        method: request.method,
        path: `/${request.segments.map((segment) => encodeURIComponent(segment)).join('/')}`,
        clientIp: credentials.clientIp,
        clientCertSubject: credentials.clientCertSubject,
      },
    });
    const principal = result.principal!;
    const admission = await this.limits.admit({ principal, tenantId: result.tenantId, clientIp: credentials.clientIp });
    try {
      const internalToken = await this.tokens.mint('forward', principal, result.tenantId);
      return {
        kind: 'allowed',
        rule: index,
        principal,
        tenantId: result.tenantId,
        internalToken,
        reason: `rule ${index}: ${result.decision?.reason ?? 'allow'}`,
        admission,
      };
    } catch (error) {
      admission.release();
      throw error;
    }
  }
}
