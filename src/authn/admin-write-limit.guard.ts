import { Inject, Injectable, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { MetricsService } from '../observability/metrics.service';
import { ExactCounterStorage } from './exact-counter.storage';
import { ExactThrottlerGuard } from './exact-throttler.guard';

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * ADMIN_WRITE_LIMIT (CONTRACT §2): every admin mutation (non-GET `/admin/*`, except the runner
 * passthrough, which has §9's limits) counts against its principal, through @nestjs/throttler on
 * the exact shared counters of §4 (key `admin:<principal>`, a fixed window of the rate's period).
 * A global guard registered after AuthGuard, so the caller is authenticated by then; everything
 * else is skipped before the library resolves any throttler option. Not an interceptor: a global
 * interceptor makes Nest wrap every call of every route (the proxied ones included) in an rxjs
 * pipeline, which showed in the proxy's CPU profile.
 */
@Injectable()
export class AdminWriteLimitGuard extends ExactThrottlerGuard {
  protected readonly keyPrefix = 'admin';
  private readonly enabled: boolean;

  // @Inject on the storage: ThrottlerGuard's own @InjectThrottlerStorage() on parameter 1 is inherited
  // by subclasses (Nest reads self-declared dependencies through the prototype chain) and would hand
  // us the proxied scopes' per-replica token buckets instead of the exact shared counters
  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    @Inject(ExactCounterStorage) storage: ExactCounterStorage,
    reflector: Reflector,
    metrics: MetricsService,
  ) {
    const { limit, periodMs } = config.ADMIN_WRITE_LIMIT;
    super({ name: 'admin_write', limit, ttl: Math.max(1000, periodMs) }, storage, reflector, metrics, {
      scope: 'principal',
      route_class: 'admin',
    });
    this.enabled = limit > 0;
  }

  protected override shouldSkip(context: ExecutionContext): Promise<boolean> {
    if (!this.enabled || context.getType() !== 'http') return Promise.resolve(true);
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    return Promise.resolve(
      request.principal === undefined ||
        READS.has(request.method) ||
        !request.url.startsWith('/admin/') ||
        request.url.startsWith('/admin/runner/'),
    );
  }

  protected override getTracker(request: Record<string, unknown>): Promise<string> {
    return Promise.resolve((request as unknown as FastifyRequest).principal!.id);
  }
}
