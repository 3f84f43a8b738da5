import { Injectable } from '@nestjs/common';
import { AppError } from '../../common/app-error';
import { PrismaService } from '../../database/prisma.service';
import { AccountNotices } from '../../identity/account-notices.service';
import { UserRepository } from '../../identity/user.repository';
import { SessionService, type ClientInfo } from '../../session/session.service';
import type { TokenResponse } from '../../session/token-response';
import { AbuseLimiter } from '../abuse-limiter.service';
import { MfaChallengeRepository } from './mfa-challenge.repository';
import { SecondFactorService, type SecondFactor } from './second-factor.service';

/** `POST /v1/auth/signin/mfa`: the second step after a password or Google sign-in. */
@Injectable()
export class MfaSigninService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly users: UserRepository,
    private readonly challenges: MfaChallengeRepository,
    private readonly factors: SecondFactorService,
    private readonly sessions: SessionService,
    private readonly limiter: AbuseLimiter,
    private readonly notices: AccountNotices,
  ) {}

  /**
   * A wrong code leaves the `mfa_token` usable (until it expires, or MFA_FAILURE_LIMIT spends it);
   * the token is spent in the same transaction as the code and the new session.
   */
  async complete(mfaToken: string, factor: SecondFactor, client: ClientInfo): Promise<TokenResponse> {
    await this.limiter.consumeIp(client.ip ?? 'unknown');
    const challenge = await this.challenges.findUsable(this.prisma, mfaToken);
    if (challenge === null) {
      // the MFA lock spent it (CONTRACT §4 wave 2): the step itself is refused, as for a wrong code
      const owner = await this.challenges.findOwner(this.prisma, mfaToken);
      if (owner !== null && (await this.factors.mfaLocked(owner))) {
        throw new AppError('mfa_invalid', { logReason: 'mfa_token spent by the MFA lock' });
      }
      throw new AppError('invalid_grant', { logReason: 'mfa_token unknown, used or expired' });
    }
    const user = await this.users.findById(this.prisma, challenge.userId);
    if (user === null) throw new AppError('invalid_grant', { logReason: 'mfa_token user gone' });
    if (user.status !== 'active') throw new AppError('account_disabled');
    const amr = [...challenge.amr, 'otp'];
    const response = await this.factors.withFactor(user, factor, 'signin', async (tx) => {
      if (!(await this.challenges.spend(tx, challenge.id))) {
        throw new AppError('invalid_grant', { logReason: 'mfa_token spent concurrently or expired' });
      }
      return this.sessions.startSignedIn({ user, amr, client, secondFactor: factor.kind }, tx);
    });
    if (factor.kind === 'recovery_code') this.notices.send(user.email, 'recovery_code_used');
    return response;
  }
}
