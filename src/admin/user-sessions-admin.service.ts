import { Injectable } from '@nestjs/common';
import { z } from 'zod';
import { AuditService } from '../audit/audit.service';
import type { AdminScope } from '../authz/admin-scope';
import { PrincipalVisibility } from '../authz/principal-visibility';
import { PrismaService } from '../database/prisma.service';
import { SessionRepository } from '../session/session.repository';
import { SessionService } from '../session/session.service';

export const adminSessionListSchema = z
  .object({
    items: z.array(
      z.object({
        id: z.string(),
        created_at: z.string(),
        last_used_at: z.string(),
        expires_at: z.string(),
        ip: z.string().nullable(),
        user_agent: z.string().nullable(),
        amr: z.array(z.string()),
      }),
    ),
    next_cursor: z.null(),
  })
  .meta({ id: 'AdminSessionList' });
export type AdminSessionList = z.infer<typeof adminSessionListSchema>;

/** A user's live sessions as an admin sees them, and global sign-out. */
@Injectable()
export class UserSessionsAdminService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly audit: AuditService,
    private readonly visibility: PrincipalVisibility,
    private readonly sessions: SessionService,
    private readonly sessionRows: SessionRepository,
  ) {}

  async listSessions(scope: AdminScope, id: string): Promise<AdminSessionList> {
    await this.visibility.requireVisibleUser(this.prisma, scope, id);
    const rows = await this.sessionRows.listLiveForUser(this.prisma, id);
    return {
      items: rows.map((session) => ({
        id: session.id,
        created_at: session.createdAt.toISOString(),
        last_used_at: session.lastUsedAt.toISOString(),
        expires_at: session.expiresAt.toISOString(),
        ip: session.ip,
        user_agent: session.userAgent,
        amr: session.amr,
      })),
      next_cursor: null,
    };
  }

  /** Global sign-out. */
  async revokeSessions(scope: AdminScope, id: string): Promise<void> {
    await this.visibility.requireVisibleUser(this.prisma, scope, id);
    const revoked = await this.prisma.$transaction(async (tx) => {
      const sessionIds = await this.sessions.revokeIn(tx, { userId: id }, 'admin_revoked');
      await this.audit.record(tx, {
        action: 'iam.user.sessions_revoke',
        target: { type: 'user', id },
        tenantId: scope.tenantId ?? null,
        changes: { sessions_revoked: sessionIds.length },
      });
      return sessionIds;
    });
    await this.sessions.announceRevoked(revoked);
  }
}
