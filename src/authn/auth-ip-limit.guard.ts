import { Inject, Injectable, UseGuards } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { MetricsService } from '../observability/metrics.service';
import { ExactCounterStorage } from './exact-counter.storage';
import { ExactThrottlerGuard } from './exact-throttler.guard';

/**
 * AUTH_IP_LIMIT per client IP per AUTH_WINDOW (CONTRACT §4), through @nestjs/throttler on the
 * exact shared counters: every call of a guarded route counts, admitted or not. The same
 * counter (`ip:<address>`) as the sign-in's and the failed refreshes', which count beside the
 * guard (AbuseLimiter: sign-in counts the IP and the account in one statement, after the
 * hasher's ticket; a refresh counts only when it fails).
 */
@Injectable()
export class AuthIpLimitGuard extends ExactThrottlerGuard {
  protected readonly keyPrefix = 'ip';

  // @Inject on the storage: ThrottlerGuard's own @InjectThrottlerStorage() on parameter 1 is inherited
  // by subclasses (Nest reads self-declared dependencies through the prototype chain) and would hand
  // us the proxied scopes' per-replica token buckets instead of the exact shared counters
  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    @Inject(ExactCounterStorage) storage: ExactCounterStorage,
    reflector: Reflector,
    metrics: MetricsService,
  ) {
    super({ name: 'ip', limit: config.AUTH_IP_LIMIT, ttl: config.AUTH_WINDOW * 1000 }, storage, reflector, metrics, {
      scope: 'ip',
      route_class: 'auth',
    });
  }

  protected override getTracker(request: Record<string, unknown>): Promise<string> {
    return Promise.resolve((request as unknown as FastifyRequest).ctx.clientIp);
  }
}

/** Every call of this route counts toward AUTH_IP_LIMIT (after the global AuthGuard, before the body is read by the handler). */
export const AuthIpLimited = () => UseGuards(AuthIpLimitGuard);
