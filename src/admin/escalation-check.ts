import { Injectable } from '@nestjs/common';
import { AuditService } from '../audit/audit.service';
import { AuthorizationCache } from '../authz/authorization-cache.service';
import { grantCovers } from '../authz/decision-engine';
import { AppError } from '../common/app-error';
import { PrismaService } from '../database/prisma.service';
import type { AdminScope } from '../authz/admin-scope';

/**
 * Nobody can grant what they do not hold (CONTRACT §5). A refusal is itself recorded in the
 * audit trail (`<action>_denied`) before the request fails.
 */
@Injectable()
export class EscalationCheck {
  constructor(
    private readonly cache: AuthorizationCache,
    private readonly prisma: PrismaService,
    private readonly audit: AuditService,
  ) {}

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

  /** Records the refused attempt and throws 403 forbidden with the reason. */
  async refuse(
    action: string,
    reason: string,
    target: { type: string; id: string },
    scope: AdminScope,
    changes: Record<string, unknown>,
  ): Promise<never> {
    await this.prisma.$transaction((tx) =>
      this.audit.record(tx, { action: `${action}_denied`, target, tenantId: scope.tenantId ?? null, changes: { ...changes, reason } }),
    );
    throw new AppError('forbidden', { detail: reason, logReason: `escalation refused: ${reason}` });
  }
}
