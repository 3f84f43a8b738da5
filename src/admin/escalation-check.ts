import { Injectable } from '@nestjs/common';
import { AuthorizationCache } from '../authz/authorization-cache.service';
import { grantCovers } from '../authz/decision-engine';
import { AppError } from '../common/app-error';
import type { AdminScope } from '../authz/admin-scope';

/**
 * Nobody can grant what they do not hold (CONTRACT §5). A refusal is a per-request 403: it is in
 * the request's log line (authz deny with the reason) and in gatehouse_http_requests_total, not
 * in the audit trail (issue 11: only entering a locked state and step-up refusals are audited).
 */
@Injectable()
export class EscalationCheck {
  constructor(private readonly cache: AuthorizationCache) {}

  /** Grants of `wanted` the actor does not hold in the scope (platform-scope ones count everywhere). */
  async missingGrants(scope: AdminScope, wanted: string[]): Promise<string[]> {
    const sources = await this.cache.grantSourcesOf(scope.actor.id);
    const held = sources
      .filter((source) => source.tenantId === null || (scope.tenantId !== undefined && source.tenantId === scope.tenantId))
      .flatMap((source) => source.grants);
    return wanted.filter((grant) => !held.some((have) => grantCovers(have, grant)));
  }

  async isPlatformAdmin(scope: AdminScope): Promise<boolean> {
    const sources = await this.cache.grantSourcesOf(scope.actor.id);
    return sources.some((source) => source.tenantId === null && source.grants.includes('*'));
  }

  /** Fails with 403 forbidden and the reason (logged with the request). */
  refuse(action: string, reason: string, target: { type: string; id: string }): Promise<never> {
    return Promise.reject(
      new AppError('forbidden', { detail: reason, logReason: `escalation refused (${action} ${target.type} ${target.id}): ${reason}` }),
    );
  }
}
