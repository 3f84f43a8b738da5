import { Injectable } from '@nestjs/common';
import { z } from 'zod';
import { AuditService } from '../audit/audit.service';
import { AppError } from '../common/app-error';
import { PrismaService } from '../database/prisma.service';
import type { Principal } from '../session/principal';
import { SessionRepository } from '../session/session.repository';
import { SessionService } from '../session/session.service';
import { userSchema, userView } from '../session/token-response';
import { AccountRepository } from './account.repository';

export const sessionSchema = z
  .object({
    id: z.string(),
    created_at: z.string(),
    last_used_at: z.string(),
    ip: z.string().nullable(),
    user_agent: z.string().nullable(),
    amr: z.array(z.string()),
    current: z.boolean(),
  })
  .meta({ id: 'Session' });
export type SessionView = z.infer<typeof sessionSchema>;

export const sessionListSchema = z.object({ items: z.array(sessionSchema), next_cursor: z.null() }).meta({ id: 'SessionList' });
export type SessionList = z.infer<typeof sessionListSchema>;

export const meSchema = z
  .object({
    user: userSchema,
    memberships: z.array(z.object({ tenant_id: z.string(), roles: z.array(z.string()) })),
    mfa: z.object({ totp: z.boolean() }),
  })
  .meta({ id: 'Me' });
export type Me = z.infer<typeof meSchema>;

/** What a signed-in user can see and end of their own account: profile, sessions, sign-out. */
@Injectable()
export class AccountService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly sessionRepository: SessionRepository,
    private readonly sessions: SessionService,
    private readonly audit: AuditService,
    private readonly accounts: AccountRepository,
  ) {}

  async me(principal: Principal): Promise<Me> {
    // one round trip: user, tenant roles and TOTP state
    const profile = principal.type === 'user' ? await this.accounts.profile(this.prisma, principal.id) : null;
    if (profile === null) throw new AppError('not_found', { detail: 'No user profile for this principal.' });
    const byTenant = new Map<string, string[]>();
    for (const { tenantId, roleName } of profile.tenantRoles) {
      byTenant.set(tenantId, [...(byTenant.get(tenantId) ?? []), roleName]);
    }
    const memberships = [...byTenant.entries()].map(([tenantId, roles]) => ({ tenant_id: tenantId, roles }));
    return { user: userView(profile.user), memberships, mfa: { totp: profile.totpConfirmed } };
  }

  async listSessions(principal: Principal): Promise<SessionList> {
    const rows = principal.type === 'user' ? await this.sessionRepository.listLiveForUser(this.prisma, principal.id) : [];
    return {
      items: rows.map((session) => ({
        id: session.id,
        created_at: session.createdAt.toISOString(),
        last_used_at: session.lastUsedAt.toISOString(),
        ip: session.ip,
        user_agent: session.userAgent,
        amr: session.amr,
        current: session.id === principal.sessionId,
      })),
      next_cursor: null,
    };
  }

  /** Ends one of the caller's own sessions; anyone else's answers 404. */
  async revokeOwnSession(principal: Principal, sessionId: string, action = 'session.revoke'): Promise<void> {
    const session = await this.sessionRepository.findSession(this.prisma, sessionId);
    if (session === null || session.userId !== principal.id) throw new AppError('not_found');
    const revoked = await this.prisma.$transaction(async (tx) => {
      const ids = await this.sessions.revokeIn(tx, { ids: [sessionId] }, action === 'session.signout' ? 'signout' : 'user_revoked');
      if (ids.length > 0) await this.audit.record(tx, { action, target: { type: 'session', id: sessionId } });
      return ids;
    });
    await this.sessions.announceRevoked(revoked);
  }

  async signout(principal: Principal): Promise<void> {
    if (principal.sessionId === undefined) return;
    await this.revokeOwnSession(principal, principal.sessionId, 'session.signout');
  }
}
