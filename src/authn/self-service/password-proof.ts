import { Injectable } from '@nestjs/common';
import { AppError } from '../../common/app-error';
import { PrismaService } from '../../database/prisma.service';
import type { User } from '../../generated/prisma/client';
import { PasswordHasher } from '../../identity/password-hasher';
import { UserRepository } from '../../identity/user.repository';
import { MetricsService } from '../../observability/metrics.service';
import type { Principal } from '../../session/principal';
import { AbuseLimiter } from '../abuse-limiter.service';

/**
 * The password a signed-in user types to prove a sensitive self-service action is theirs.
 * Attempts count on the account's sign-in counter, so a stolen access token buys no more
 * password guesses than the sign-in form would.
 */
@Injectable()
export class PasswordProof {
  constructor(
    private readonly prisma: PrismaService,
    private readonly users: UserRepository,
    private readonly hasher: PasswordHasher,
    private readonly limiter: AbuseLimiter,
    private readonly metrics: MetricsService,
  ) {}

  /** The caller's user row; service accounts have no self-service (404, as for /me). */
  async requireUser(principal: Principal): Promise<User> {
    const user = principal.type === 'user' ? await this.users.findById(this.prisma, principal.id) : null;
    if (user === null) throw new AppError('not_found', { detail: 'No user profile for this principal.' });
    return user;
  }

  async hasPassword(user: User): Promise<boolean> {
    return this.users.hasPassword(this.prisma, user.id);
  }

  /** 401 invalid_credentials unless `password` is the user's; 409 when the account has none. */
  async check(user: User, password: string, context: string): Promise<void> {
    const stored = (await this.users.findByEmailWithPassword(this.prisma, user.email))?.password?.hash;
    if (stored === undefined) {
      throw new AppError('conflict', {
        detail: 'This account has no password. Set one with the forgot-password link first.',
        logReason: `${context}: account without password`,
      });
    }
    const attempt = await this.limiter.reserveAttempt(`signin:${user.email}`);
    if (!(await this.limiter.givenBackIfUnavailable(attempt, () => this.hasher.verify(stored, password)))) {
      this.metrics.authFailures.inc({ reason: 'invalid_credentials' });
      // per request: counted and logged, not audited; only entering a locked state is
      await this.limiter.recordFailure(attempt, user.id);
      throw new AppError('invalid_credentials', { logReason: `${context}: wrong current password` });
    }
    await this.limiter.resetAccount(`signin:${user.email}`);
  }

  hash(password: string): Promise<string> {
    return this.hasher.hash(password);
  }
}
