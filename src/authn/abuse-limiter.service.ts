import { Inject, Injectable } from '@nestjs/common';
import { AppError } from '../common/app-error';
import { requestContext } from '../common/request-context';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { PrismaService } from '../database/prisma.service';
import type { Db } from '../database/transaction';
import { MetricsService } from '../observability/metrics.service';
import { RateLimitCounterRepository } from './rate-limit-counter.repository';

const accountKey = (account: string) => `account:${account}`;

/**
 * Fixed-window counters in PostgreSQL, shared by every replica. One atomic upsert both
 * counts and decides, so 50 parallel attempts on two replicas let exactly `limit` through.
 */
@Injectable()
export class AbuseLimiter {
  constructor(
    private readonly prisma: PrismaService,
    private readonly counters: RateLimitCounterRepository,
    private readonly metrics: MetricsService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /**
   * Counts one request from this client IP; throws 429 beyond AUTH_IP_LIMIT. For the counts the
   * throttler guard (AuthIpLimitGuard) cannot make: failed refreshes only, second-factor and
   * reauth attempts; the same `ip:` counter.
   */
  async consumeIp(ip: string): Promise<void> {
    await this.consume(`ip:${ip}`, this.config.AUTH_IP_LIMIT);
  }

  /**
   * Reserves one attempt against an account before any password or code is checked;
   * throws 429 when the account has used up its attempts. `resetAccount` after a success.
   */
  async consumeAccount(account: string): Promise<void> {
    await this.consume(accountKey(account), this.config.AUTH_ACCOUNT_FAILURE_LIMIT);
  }

  /** Gives back an attempt reserved with `consumeAccount` that was never made (hasher overloaded). */
  async releaseAccount(account: string): Promise<void> {
    await this.counters.release(this.prisma, accountKey(account));
  }

  /** consumeIp then consumeAccount, in one statement (the account is counted only if the IP was within its limit). */
  async consumeIpAndAccount(ip: string, account: string): Promise<void> {
    const windowSeconds = this.config.AUTH_WINDOW;
    const ipKey = `ip:${ip}`;
    const { first, second } = await this.counters.hitPair(
      this.prisma,
      ipKey,
      this.config.AUTH_IP_LIMIT,
      accountKey(account),
      windowSeconds,
    );
    this.refuseOver(ipKey, first, this.config.AUTH_IP_LIMIT);
    if (second !== null) this.refuseOver(accountKey(account), second, this.config.AUTH_ACCOUNT_FAILURE_LIMIT);
  }

  /** The counter keys `resetAccount` clears, for callers that clear them in their own statement. */
  accountCounterKeys(account: string): string[] {
    return [accountKey(account)];
  }

  async resetAccount(account: string): Promise<void> {
    await this.counters.clear(this.prisma, [accountKey(account)]);
  }

  /** Lifts an account's lockouts (admin unlock), inside the caller's transaction. */
  async unlockIn(db: Db, email: string): Promise<number> {
    return this.counters.clear(db, [accountKey(`signin:${email}`), accountKey(`forgot:${email}`)]);
  }

  private async consume(key: string, limit: number, windowSeconds = this.config.AUTH_WINDOW): Promise<void> {
    this.refuseOver(key, await this.counters.hit(this.prisma, key, windowSeconds), limit, windowSeconds);
  }

  private refuseOver(
    key: string,
    row: { count: number; retryAfterSeconds: number },
    limit: number,
    windowSeconds = this.config.AUTH_WINDOW,
  ): void {
    if (row.count > limit) {
      const scope = key.startsWith('ip:') ? 'ip' : key.startsWith('admin:') ? 'principal' : 'account';
      this.metrics.rateLimited.inc({ scope, route_class: scope === 'principal' ? 'admin' : 'auth' });
      const context = requestContext.get();
      if (context !== undefined) context.rateLimited = scope;
      throw new AppError('rate_limited', {
        headers: { 'retry-after': String(row.retryAfterSeconds) },
        logReason: `rate limited: ${key.split(':')[0]} over ${limit} per ${windowSeconds}s`,
      });
    }
  }
}
