import type { INestApplicationContext } from '@nestjs/common';
import type { FastRouteHandler, FastRouteKey } from '../common/fast-routes';
import { ForwardController } from './forward.controller';

/** The decision API, served by Fastify calling the controller method directly (common/fast-routes.ts). */
export const FORWARD_FAST_ROUTES = ['ALL /v1/authz/forward'] as const satisfies readonly FastRouteKey[];

/**
 * `ANY /v1/authz/forward` without Nest's per-request chain. Nothing in that chain applies to it:
 * the route is `@DelegatedTo` (AuthGuard lets it through; the controller runs RequestAuthorizer
 * with the matched rule), AdminWriteLimitGuard skips non-admin paths, there are no pipes or
 * interceptors, and the method takes the raw request and reply (`@Req`, `@Res`). Errors reach
 * Fastify's error handler, which is Nest's: the same ProblemFilter answers them. A decision made
 * from memory is answered before the handler returns (undefined: no promise for Fastify to wait on).
 */
export function forwardFastHandlers(app: INestApplicationContext): ReadonlyMap<FastRouteKey, FastRouteHandler> {
  const controller = app.get(ForwardController);
  return new Map<FastRouteKey, FastRouteHandler>([
    [
      FORWARD_FAST_ROUTES[0],
      (request, reply) => {
        const pending = controller.decide(request, reply);
        return pending === undefined ? undefined : pending.then(() => reply);
      },
    ],
  ]);
}
