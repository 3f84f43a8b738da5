import { Injectable, type ExecutionContext } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import type { AppConfig } from '../config/config';
import { ExactThrottlerGuard, type ExactScope } from './exact-throttler.guard';

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
  protected scopeOf(config: AppConfig): ExactScope {
    const { limit, periodMs } = config.ADMIN_WRITE_LIMIT;
    return {
      name: 'admin_write',
      keyPrefix: 'admin',
      limit,
      windowMs: Math.max(1000, periodMs),
      labels: { scope: 'principal', route_class: 'admin' },
    };
  }

  protected override shouldSkip(context: ExecutionContext): Promise<boolean> {
    if (this.scope.limit <= 0 || context.getType() !== 'http') return Promise.resolve(true);
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
