import type { FastifyInstance, FastifyReply, FastifyRequest, RouteHandlerMethod } from 'fastify';

/** A promise when the answer waits for something; undefined when the handler has already sent it. */
export type FastRouteHandler = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown> | undefined;

/** `METHOD /route/template`, as Fastify names a route; `ALL /route/template` for a route of every method (`@All`). */
export type FastRouteKey = `${string} /${string}`;

export interface FastRoutes {
  /** Serves these routes with these handlers from now on (call before the server takes traffic). */
  bind(handlers: ReadonlyMap<FastRouteKey, FastRouteHandler>): void;
}

/**
 * Routes whose handler Fastify calls directly instead of Nest's router. The route stays a Nest
 * controller method (its auth declaration, route snapshot and OpenAPI entry are read from it, and
 * Fastify registers it when Nest does), but the function Fastify runs for it is replaced as it is
 * registered: the request then skips Nest's per-request chain (execution contexts, guards,
 * pipes, interceptors, parameter decorators, the response wrapper), which cost the proxied path
 * more than the proxying itself. The replacing handler must do everything the declarations ask
 * for; until one is bound, Nest's own handler serves. Install before Nest registers its routes.
 */
export function installFastRoutes(fastify: FastifyInstance, keys: readonly FastRouteKey[]): FastRoutes {
  let bound: ReadonlyMap<FastRouteKey, FastRouteHandler> = new Map();
  const wanted = new Set<string>(keys);
  fastify.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const key = `${methods.length === 1 ? methods[0]!.toUpperCase() : 'ALL'} ${route.url}` as FastRouteKey;
    if (!wanted.has(key)) return;
    const nestHandler = route.handler;
    route.handler = function fastRoute(this: FastifyInstance, request: FastifyRequest, reply: FastifyReply) {
      const handler = bound.get(key);
      return handler === undefined ? nestHandler.call(this, request, reply) : handler(request, reply);
    } as RouteHandlerMethod;
  });
  return {
    bind(handlers) {
      for (const key of handlers.keys()) if (!wanted.has(key)) throw new Error(`fast route ${key} was not installed`);
      bound = handlers;
    },
  };
}
