import { Injectable } from '@nestjs/common';
import { AuditService } from '../../audit/audit.service';
import { PrismaService } from '../../database/prisma.service';
import type { User } from '../../generated/prisma/client';
import { AccountMails, VERIFY_EMAIL_TTL_S } from '../../identity/account-mails.service';
import { AccountNotices } from '../../identity/account-notices.service';
import { EmailTokenRepository } from '../../identity/email-token.repository';
import { assertPasswordAllowed } from '../../identity/password-policy';
import { UserRepository } from '../../identity/user.repository';
import type { Principal } from '../../session/principal';
import { SessionRepository } from '../../session/session.repository';
import { SessionService } from '../../session/session.service';
import { AbuseLimiter } from '../abuse-limiter.service';
import { PasswordProof } from './password-proof';

/** The signed-in user's own password and email address (CONTRACT §12). */
@Injectable()
export class CredentialChangeService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly users: UserRepository,
    private readonly emailTokens: EmailTokenRepository,
    private readonly proof: PasswordProof,
    private readonly sessionRepository: SessionRepository,
    private readonly sessions: SessionService,
    private readonly audit: AuditService,
    private readonly mails: AccountMails,
    private readonly notices: AccountNotices,
    private readonly limiter: AbuseLimiter,
  ) {}

  /** Needs the current password; every other session of the user ends, the calling one stays. */
  async changePassword(principal: Principal, currentPassword: string, newPassword: string): Promise<void> {
    const user = await this.proof.requireUser(principal);
    await this.proof.check(user, currentPassword, 'password_change');
    assertPasswordAllowed(newPassword, user.email, 'new_password', user.displayName ?? undefined);
    const hash = await this.proof.hash(newPassword);
    const revoked = await this.prisma.$transaction(async (tx) => {
      await this.users.lock(tx, user.id);
      await this.users.setPasswordHash(tx, user.id, hash);
      const others = (await this.sessionRepository.listLiveForUser(tx, user.id))
        .map((s) => s.id)
        .filter((id) => id !== principal.sessionId);
      const ids = others.length === 0 ? [] : await this.sessions.revokeIn(tx, { ids: others }, 'password_changed');
      await this.audit.record(tx, {
        action: 'auth.password_changed',
        actor: { principalId: user.id, principalType: 'user' },
        target: { type: 'user', id: user.id },
        changes: { sessions_revoked: ids.length },
      });
      return ids;
    });
    await this.sessions.announceRevoked(revoked);
    this.notices.send(user.email, 'password_changed');
  }

  /**
   * Always 202 for the caller, whatever the address: the new address gets either a link that
   * moves the account there once followed, or (when it already has an account) a mail saying
   * so. Nothing changes until the link is used (PasswordAuthService.verifyEmail).
   */
  async requestEmailChange(principal: Principal, newEmail: string, password: string): Promise<void> {
    const user = await this.proof.requireUser(principal);
    await this.proof.check(user, password, 'email_change');
    if (newEmail === user.email) return;
    await this.limiter.consumeAccount(`email-change:${user.id}`);
    if ((await this.users.findByEmailWithPassword(this.prisma, newEmail)) !== null) {
      this.mails.emailAddressTaken(newEmail);
      return;
    }
    const token = await this.prisma.$transaction(async (tx) => {
      const issued = await this.emailTokens.issue(tx, user.id, 'change_email', VERIFY_EMAIL_TTL_S, newEmail);
      await this.audit.record(tx, {
        action: 'user.email_change_requested',
        actor: { principalId: user.id, principalType: 'user' },
        target: { type: 'user', id: user.id },
      });
      return issued;
    });
    this.mails.confirmEmailChange(newEmail, token);
  }

  /** A fresh verification link for the current address; nothing when it is verified already. */
  async resendVerification(principal: Principal): Promise<void> {
    const user: User = await this.proof.requireUser(principal);
    if (user.emailVerifiedAt !== null) return;
    await this.limiter.consumeAccount(`verify-resend:${user.id}`);
    const token = await this.prisma.$transaction((tx) => this.emailTokens.issue(tx, user.id, 'verify_email', VERIFY_EMAIL_TTL_S));
    this.mails.verifyEmail(user.email, token);
  }
}
