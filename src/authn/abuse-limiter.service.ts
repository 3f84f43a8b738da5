import { Inject, Injectable } from '@nestjs/common';
import { AuditService } from '../audit/audit.service';
import { AppError } from '../common/app-error';
import { requestContext } from '../common/request-context';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { PrismaService } from '../database/prisma.service';
import type { Db } from '../database/transaction';
import type { SigninAccount } from '../identity/user.repository';
import { MetricsService } from '../observability/metrics.service';
import { TotpCredentialRepository } from './mfa/totp-credential.repository';
import { RateLimitCounterRepository, type ChainLink, type CounterHit } from './rate-limit-counter.repository';

/** The account's counter from every address (AUTH_ACCOUNT_GLOBAL_FAILURE_LIMIT); also the one-counter limits (forgot, client…). */
const accountKey = (account: string) => `account:${account}`;
/** The account's counter from one client IP (AUTH_ACCOUNT_FAILURE_LIMIT). */
const accountIpKey = (account: string, ip: string) => `account:${account}|ip:${ip}`;

/**
 * An attempt reserved against an account before its password or code is checked: which
 * counters it took and where they stood, so a failure can tell whether it locked the account.
 */
export interface AccountAttempt {
  account: string;
  ip: string;
  /** count of the (account, client IP) counter after this attempt */
  fromIp: number;
  /** count of the account's counter from every address after this attempt */
  fromAll: number;
}

/**
 * Fixed-window counters in PostgreSQL, shared by every replica. One atomic upsert both
 * counts and decides, so 50 parallel attempts on two replicas let exactly `limit` through.
 *
 * Sign-in attempts (password, second factor, re-authentication) count per (account, client IP)
 * against AUTH_ACCOUNT_FAILURE_LIMIT and per account against AUTH_ACCOUNT_GLOBAL_FAILURE_LIMIT
 * (CONTRACT §4, wave 2), so an attacker at one address cannot lock the owner out at another;
 * a success or a password reset clears both, and the failure that uses up a budget is audited
 * once as `auth.account_locked`.
 */
@Injectable()
export class AbuseLimiter {
  constructor(
    private readonly prisma: PrismaService,
    private readonly counters: RateLimitCounterRepository,
    private readonly totp: TotpCredentialRepository,
    private readonly audit: AuditService,
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
   * One counter per account for the limits that are not sign-in attempts (reset mails, client
   * credentials, email changes): throws 429 once AUTH_ACCOUNT_FAILURE_LIMIT is used up;
   * `resetAccount` after a success.
   */
  async consumeAccount(account: string): Promise<void> {
    await this.consume(accountKey(account), this.config.AUTH_ACCOUNT_FAILURE_LIMIT);
  }

  /**
   * Reserves one sign-in attempt against `account` from `ip` (default: the request's client
   * IP) before any password or code is checked; throws 429 when either budget is used up.
   */
  async reserveAttempt(account: string, ip: string = requestContext.get()?.clientIp ?? 'unknown'): Promise<AccountAttempt> {
    const [fromIp, fromAll] = await this.counters.hitChain(this.prisma, this.accountLinks(account, ip), this.config.AUTH_WINDOW);
    return this.decide(account, ip, fromIp!, fromAll ?? null);
  }

  /**
   * A password sign-in's first statement: the client IP, then reserveAttempt (the account is
   * counted only if the IP was within its limit), then the account `email` is read — one round
   * trip. Throws 429 when a budget is used up.
   */
  async consumeSigninAttempt(ip: string, account: string, email: string): Promise<{ attempt: AccountAttempt; user: SigninAccount | null }> {
    const ipKey = `ip:${ip}`;
    const {
      hits: [first, fromIp, fromAll],
      account: user,
    } = await this.counters.hitChainAndFindSigninAccount(
      this.prisma,
      [{ key: ipKey, limit: this.config.AUTH_IP_LIMIT }, ...this.accountLinks(account, ip)],
      this.config.AUTH_WINDOW,
      email,
    );
    this.refuseOver(ipKey, first!, this.config.AUTH_IP_LIMIT);
    return { attempt: this.decide(account, ip, fromIp!, fromAll ?? null), user };
  }

  /**
   * Runs the check of a reserved attempt; when the hasher answers 503 `unavailable` (overloaded,
   * or its thread failed) the attempt was never made, so it is given back before the 503 goes on.
   */
  async givenBackIfUnavailable<T>(attempt: AccountAttempt, check: () => Promise<T>): Promise<T> {
    try {
      return await check();
    } catch (error) {
      if (error instanceof AppError && error.code === 'unavailable') await this.releaseAttempt(attempt);
      throw error;
    }
  }

  /** Gives back an attempt reserved with `reserveAttempt` that was never made (hasher overloaded). */
  async releaseAttempt(attempt: AccountAttempt): Promise<void> {
    await this.counters.release(this.prisma, [accountIpKey(attempt.account, attempt.ip), accountKey(attempt.account)]);
  }

  /**
   * After a failed check: when this attempt used up the last of a budget, the account has just
   * entered a locked state, which is audited once (`auth.account_locked`; ids and flags only).
   * Unknown accounts are counted but never audited (there is nothing to name).
   */
  async recordFailure(attempt: AccountAttempt, userId: string | null, db: Db = this.prisma): Promise<void> {
    if (userId === null || !this.locksWith(attempt)) return;
    const fromIp = attempt.fromIp === this.config.AUTH_ACCOUNT_FAILURE_LIMIT;
    const fromAll = attempt.fromAll === this.config.AUTH_ACCOUNT_GLOBAL_FAILURE_LIMIT;
    await this.audit.record(db, {
      action: 'auth.account_locked',
      actor: { principalId: null, principalType: null },
      target: { type: 'user', id: userId },
      changes: {
        kind: attempt.account.split(':')[0],
        from_client_ip: fromIp,
        from_all_addresses: fromAll,
        window_seconds: this.config.AUTH_WINDOW,
      },
    });
  }

  /** Whether this attempt, if it fails, uses up the last of a budget (the account then enters a locked state). */
  locksWith(attempt: AccountAttempt): boolean {
    return attempt.fromIp === this.config.AUTH_ACCOUNT_FAILURE_LIMIT || attempt.fromAll === this.config.AUTH_ACCOUNT_GLOBAL_FAILURE_LIMIT;
  }

  /** What session_start() clears on a success: every counter of the account (by key and by account). */
  accountCounterKeys(account: string): string[] {
    return [accountKey(account), account];
  }

  /** After a success: clears the account's counters from every address. */
  async resetAccount(account: string, db: Db = this.prisma): Promise<void> {
    await this.counters.clear(db, [accountKey(account)], [account]);
  }

  /**
   * A password reset: lifts the sign-in lockouts of this user from every address and the
   * second-factor lock, inside the caller's transaction.
   */
  async clearSigninLocksIn(db: Db, user: { id: string; email: string }): Promise<number> {
    const cleared = await this.counters.clear(db, [accountKey(`signin:${user.email}`)], [`signin:${user.email}`]);
    return cleared + ((await this.totp.clearFailures(db, user.id)) ? 1 : 0);
  }

  /** Lifts an account's lockouts (admin unlock, account deletion), inside the caller's transaction. */
  async unlockIn(db: Db, user: { id: string; email: string }): Promise<number> {
    const lifted = await this.clearSigninLocksIn(db, user);
    return lifted + (await this.counters.clear(db, [accountKey(`forgot:${user.email}`)]));
  }

  private accountLinks(account: string, ip: string): ChainLink[] {
    return [
      { key: accountIpKey(account, ip), limit: this.config.AUTH_ACCOUNT_FAILURE_LIMIT, account },
      { key: accountKey(account), limit: this.config.AUTH_ACCOUNT_GLOBAL_FAILURE_LIMIT, account },
    ];
  }

  private decide(account: string, ip: string, fromIp: CounterHit, fromAll: CounterHit | null): AccountAttempt {
    this.refuseOver(accountIpKey(account, ip), fromIp, this.config.AUTH_ACCOUNT_FAILURE_LIMIT);
    this.refuseOver(accountKey(account), fromAll!, this.config.AUTH_ACCOUNT_GLOBAL_FAILURE_LIMIT);
    return { account, ip, fromIp: fromIp.count, fromAll: fromAll!.count };
  }

  private async consume(key: string, limit: number, windowSeconds = this.config.AUTH_WINDOW): Promise<void> {
    this.refuseOver(key, await this.counters.hit(this.prisma, key, windowSeconds), limit, windowSeconds);
  }

  private refuseOver(key: string, row: CounterHit, limit: number, windowSeconds = this.config.AUTH_WINDOW): void {
    if (row.count > limit) {
      const scope = key.startsWith('ip:') ? 'ip' : key.startsWith('admin:') ? 'principal' : 'account';
      this.metrics.rateLimited.inc({ scope, route_class: scope === 'principal' ? 'admin' : 'auth' });
      const context = requestContext.get();
      if (context !== undefined) context.rateLimited = scope;
      const which = key.includes('|ip:') ? 'account from this address' : key.split(':')[0];
      throw new AppError('rate_limited', {
        headers: { 'retry-after': String(row.retryAfterSeconds) },
        logReason: `rate limited: ${which} over ${limit} per ${windowSeconds}s`,
      });
    }
  }
}
