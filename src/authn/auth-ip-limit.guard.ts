import { Injectable, UseGuards } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import type { AppConfig } from '../config/config';
import { ExactThrottlerGuard, type ExactScope } from './exact-throttler.guard';

/**
 * AUTH_IP_LIMIT per client IP per AUTH_WINDOW (CONTRACT §4), through @nestjs/throttler on the
 * exact shared counters: every call of a guarded route counts, admitted or not. The same
 * counter (`ip:<address>`) as the sign-in's and the failed refreshes', which count beside the
 * guard (AbuseLimiter: sign-in counts the IP and the account in one statement, after the
 * hasher's ticket; a refresh counts only when it fails).
 */
@Injectable()
export class AuthIpLimitGuard extends ExactThrottlerGuard {
  protected scopeOf(config: AppConfig): ExactScope {
    return {
      name: 'ip',
      keyPrefix: 'ip',
      limit: config.AUTH_IP_LIMIT,
      windowMs: config.AUTH_WINDOW * 1000,
      labels: { scope: 'ip', route_class: 'auth' },
    };
  }

  protected override getTracker(request: Record<string, unknown>): Promise<string> {
    return Promise.resolve((request as unknown as FastifyRequest).ctx.clientIp);
  }
}

/** Every call of this route counts toward AUTH_IP_LIMIT (after the global AuthGuard, before the body is read by the handler). */
export const AuthIpLimited = () => UseGuards(AuthIpLimitGuard);
