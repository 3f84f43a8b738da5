import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { AbuseLimiter } from './abuse-limiter.service';

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * ADMIN_WRITE_LIMIT (CONTRACT §2): every admin mutation (non-GET `/admin/*`, except the runner
 * passthrough, which has §9's limits) counts against its principal in the exact shared counters
 * of §4. A global guard registered after AuthGuard, so the caller is authenticated by then. Not
 * an interceptor: a global interceptor makes Nest wrap every call of every route (the proxied
 * ones included) in an rxjs pipeline, which showed in the proxy's CPU profile.
 */
@Injectable()
export class AdminWriteLimitGuard implements CanActivate {
  constructor(private readonly limiter: AbuseLimiter) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (context.getType() !== 'http') return true;
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    const principal = request.principal;
    if (
      principal === undefined ||
      READS.has(request.method) ||
      !request.url.startsWith('/admin/') ||
      request.url.startsWith('/admin/runner/')
    ) {
      return true;
    }
    await this.limiter.consumeAdminWrite(principal.id);
    return true;
  }
}
