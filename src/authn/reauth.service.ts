import { Injectable } from '@nestjs/common';
import { AuditService } from '../audit/audit.service';
import { AppError } from '../common/app-error';
import { PrismaService } from '../database/prisma.service';
import type { Db } from '../database/transaction';
import { AccountNotices } from '../identity/account-notices.service';
import { PasswordHasher } from '../identity/password-hasher';
import { UserRepository } from '../identity/user.repository';
import { MetricsService } from '../observability/metrics.service';
import type { Principal } from '../session/principal';
import { SessionService } from '../session/session.service';
import { AbuseLimiter } from './abuse-limiter.service';
import { SecondFactorService, type SecondFactor } from './mfa/second-factor.service';

export type ReauthProof = { kind: 'password'; password: string } | SecondFactor;

/**
 * `POST /v1/auth/reauth` (CONTRACT §4 "Recent authentication"): the signed-in user proves again
 * who they are, and their session counts as freshly authenticated for step-up. A code or recovery
 * code also gives the session a second factor. Attempts count like sign-in attempts.
 */
@Injectable()
export class ReauthService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly users: UserRepository,
    private readonly hasher: PasswordHasher,
    private readonly sessions: SessionService,
    private readonly factors: SecondFactorService,
    private readonly limiter: AbuseLimiter,
    private readonly audit: AuditService,
    private readonly notices: AccountNotices,
    private readonly metrics: MetricsService,
  ) {}

  async reauthenticate(principal: Principal, proof: ReauthProof, clientIp: string): Promise<void> {
    const sessionId = principal.sessionId;
    if (principal.type !== 'user' || sessionId === undefined) {
      throw new AppError('forbidden', {
        detail: 'Only a signed-in user session can re-authenticate.',
        logReason: 'reauth without a user session',
      });
    }
    await this.limiter.consumeIp(clientIp);
    const user = await this.users.findByIdWithPassword(this.prisma, principal.id);
    if (user === null) throw new AppError('invalid_token', { logReason: 'reauth: user gone' });
    const mark = async (tx: Db, method: ReauthProof['kind']) => {
      if (!(await this.sessions.markReauthenticated(tx, sessionId, method !== 'password'))) {
        throw new AppError('invalid_token', { logReason: 'reauth: session revoked or expired' });
      }
      await this.audit.record(tx, {
        action: 'auth.reauth',
        actor: { principalId: user.id, principalType: 'user' },
        target: { type: 'session', id: sessionId },
        changes: { method },
      });
    };
    if (proof.kind !== 'password') {
      await this.factors.withFactor(user, proof, 'reauth', (tx) => mark(tx, proof.kind));
      if (proof.kind === 'recovery_code') this.notices.send(user.email, 'recovery_code_used');
      return;
    }
    const attempt = await this.factors.reserveAttempt(user);
    const hash = user.password?.hash;
    const valid = await this.limiter.givenBackIfUnavailable(attempt, () =>
      hash === undefined ? this.hasher.verifyDummy(proof.password) : this.hasher.verify(hash, proof.password),
    );
    if (!valid) {
      this.metrics.authFailures.inc({ reason: 'invalid_credentials' });
      await this.limiter.recordFailure(attempt, user.id);
      throw new AppError('invalid_credentials', { logReason: 'reauth: wrong password' });
    }
    await this.prisma.$transaction((tx) => mark(tx, 'password'));
    await this.factors.clearAttempts(user);
  }
}
