import { Injectable } from '@nestjs/common';
import { AuditService } from '../../audit/audit.service';
import { PrismaService } from '../../database/prisma.service';
import { SessionRepository } from '../../session/session.repository';
import { SessionService } from '../../session/session.service';

/** RFC 7009 for refresh tokens: whoever holds one may end its session, as a public client signs out. */
@Injectable()
export class TokenRevocationService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly sessionRepository: SessionRepository,
    private readonly sessions: SessionService,
    private readonly audit: AuditService,
  ) {}

  /**
   * Revokes the session the refresh token belongs to (a spent token of the family too: ending
   * the session is the safe direction). Anything else — unknown, an access token — changes
   * nothing; the answer is the same either way (RFC 7009 §2.2).
   */
  async revoke(token: string): Promise<void> {
    const revoked = await this.prisma.$transaction(async (tx) => {
      const row = await this.sessionRepository.findRefreshToken(tx, token);
      if (row === null) return [];
      const ids = await this.sessions.revokeIn(tx, { ids: [row.sessionId] }, 'oauth_revoke');
      if (ids.length > 0) {
        await this.audit.record(tx, {
          action: 'session.revoke',
          actor: { principalId: row.session.userId, principalType: 'user' },
          target: { type: 'session', id: row.sessionId },
          changes: { via: 'oauth_revoke' },
        });
      }
      return ids;
    });
    await this.sessions.announceRevoked(revoked);
  }
}
