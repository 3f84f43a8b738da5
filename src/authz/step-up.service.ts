import { Inject, Injectable } from '@nestjs/common';
import { AuditService } from '../audit/audit.service';
import { AppError } from '../common/app-error';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { PrismaService } from '../database/prisma.service';
import type { Principal } from '../session/principal';
import { SessionService } from '../session/session.service';
import { AuthorizationCache } from './authorization-cache.service';
import { parseGrant } from './decision-engine';

export const STEP_UP_EXEMPT_RIGHT = 'iam.step_up_exempt';

/** What an action needs beyond its right (CONTRACT §6 "Step-up"). */
export type StepUpLevel = 'admin_mutation' | 'admin_sensitive';

/** Whether `method path` is an admin mutation: every non-GET `/admin/*` except the runner passthrough. */
export function isAdminMutation(method: string, path: string): boolean {
  const upper = method.toUpperCase();
  if (upper === 'GET' || upper === 'HEAD' || upper === 'OPTIONS') return false;
  const pathOnly = path.split('?')[0]!;
  return pathOnly.startsWith('/admin/') && !pathOnly.startsWith('/admin/runner/') && pathOnly !== '/admin/runner';
}

/**
 * Step-up for admin actions and for a user's own second-factor changes. A user's session must
 * carry a second factor (when ADMIN_MFA_REQUIRED) and, for the most sensitive actions, a primary
 * authentication younger than ADMIN_REAUTH_MAX_AGE (sign-in, second factor or POST /v1/auth/reauth;
 * a refresh does not count). Service accounts have no session: they are refused unless a grant
 * names `iam.step_up_exempt` itself ("*" does not: an exemption must be given on purpose).
 * Refusals are audited as `auth.step_up_denied`.
 */
@Injectable()
export class StepUpService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly sessions: SessionService,
    private readonly grants: AuthorizationCache,
    private readonly audit: AuditService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** Throws 403 `mfa_required` / `reauth_required` when `actor` may not take this admin action now. */
  async requireForAdmin(actor: Principal, level: StepUpLevel, what: string, tenantId?: string): Promise<void> {
    if (actor.type === 'service_account') {
      if (await this.isExempt(actor.id, tenantId)) return;
      if (this.config.ADMIN_MFA_REQUIRED) return this.refuse(actor, 'mfa_required', what, 'service account without iam.step_up_exempt');
      if (level === 'admin_sensitive') return this.refuse(actor, 'reauth_required', what, 'service account without iam.step_up_exempt');
      return;
    }
    if (!this.config.ADMIN_MFA_REQUIRED && level !== 'admin_sensitive') return;
    const authentication = actor.sessionId === undefined ? null : await this.sessions.authenticationOf(actor.sessionId);
    if (this.config.ADMIN_MFA_REQUIRED && authentication?.secondFactor !== true) {
      return this.refuse(actor, 'mfa_required', what, 'session without a second factor');
    }
    if (level === 'admin_sensitive' && !this.isRecent(authentication?.authenticatedAt, this.config.ADMIN_REAUTH_MAX_AGE)) {
      return this.refuse(actor, 'reauth_required', what, `no authentication within ${this.config.ADMIN_REAUTH_MAX_AGE}s`);
    }
  }

  /** A user's own second-factor change needs an authentication within SELF_REAUTH_MAX_AGE (CONTRACT §4). */
  async requireRecentSelf(actor: Principal, what: string): Promise<void> {
    const authentication = actor.sessionId === undefined ? null : await this.sessions.authenticationOf(actor.sessionId);
    if (!this.isRecent(authentication?.authenticatedAt, this.config.SELF_REAUTH_MAX_AGE)) {
      return this.refuse(actor, 'reauth_required', what, `no authentication within ${this.config.SELF_REAUTH_MAX_AGE}s`);
    }
  }

  private isRecent(at: Date | undefined, maxAgeSeconds: number): boolean {
    return at !== undefined && Date.now() - at.getTime() <= maxAgeSeconds * 1000;
  }

  private async isExempt(principalId: string, tenantId: string | undefined): Promise<boolean> {
    const sources = await this.grants.grantSourcesOf(principalId);
    return sources.some(
      (source) =>
        (source.tenantId === null || source.tenantId === tenantId) &&
        source.grants.some((grant) => grant !== '*' && parseGrant(grant).right === STEP_UP_EXEMPT_RIGHT),
    );
  }

  private async refuse(actor: Principal, code: 'mfa_required' | 'reauth_required', what: string, reason: string): Promise<never> {
    await this.prisma.$transaction((tx) =>
      this.audit.record(tx, {
        action: 'auth.step_up_denied',
        actor: { principalId: actor.id, principalType: actor.type },
        target: actor.sessionId === undefined ? undefined : { type: 'session', id: actor.sessionId },
        changes: { required: code === 'mfa_required' ? 'second_factor' : 'recent_authentication', action: what },
      }),
    );
    throw new AppError(code, { logReason: `step-up: ${reason} (${what})` });
  }
}
