import { Injectable, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { from, switchMap, type Observable } from 'rxjs';
import { AbuseLimiter } from './abuse-limiter.service';

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * ADMIN_WRITE_LIMIT (CONTRACT §2): every admin mutation (non-GET `/admin/*`, except the runner
 * passthrough, which has §9's limits) counts against its principal in the exact shared counters
 * of §4. An interceptor, so it runs after the global guard has authenticated the caller.
 */
@Injectable()
export class AdminWriteLimitInterceptor implements NestInterceptor {
  constructor(private readonly limiter: AbuseLimiter) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') return next.handle();
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    const principal = request.principal;
    if (
      principal === undefined ||
      READS.has(request.method) ||
      !request.url.startsWith('/admin/') ||
      request.url.startsWith('/admin/runner/')
    ) {
      return next.handle();
    }
    return from(this.limiter.consumeAdminWrite(principal.id)).pipe(switchMap(() => next.handle()));
  }
}
