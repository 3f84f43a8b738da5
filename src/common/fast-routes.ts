import type { FastifyInstance, FastifyReply, FastifyRequest, RouteHandlerMethod, RouteOptions } from 'fastify';

/** A promise when the answer waits for something; undefined when the handler has already sent it. */
export type FastRouteHandler = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown> | undefined;

/** `METHOD /route/template`, as Fastify names a route; `ALL /route/template` for a route of every method (`@All`). */
export type FastRouteKey = `${string} /${string}`;

export interface FastRoutes {
  /** Serves these routes with these handlers from now on (call before the server takes traffic). */
  bind(handlers: ReadonlyMap<FastRouteKey, FastRouteHandler>): void;
}

function keyOf(method: string | string[], url: string): string {
  const methods = Array.isArray(method) ? method : [method];
  return `${methods.length === 1 ? methods[0]!.toUpperCase() : 'ALL'} ${url}`;
}

/**
 * Routes whose handler Fastify calls directly instead of Nest's router. The route stays a Nest
 * controller method (its auth declaration, route snapshot and OpenAPI entry are read from it, and
 * Fastify registers it when Nest does), but the function Fastify runs for it is replaced as it is
 * registered: the request then skips Nest's per-request chain (execution contexts, guards,
 * pipes, interceptors, parameter decorators, the response wrapper), which cost the proxied path
 * more than the proxying itself. The replacing handler must do everything the declarations ask
 * for; until one is bound, Nest's own handler serves. Install before Nest registers its routes.
 *
 * The handler is replaced in `fastify.route()` (which Nest's adapter calls for every route), before
 * Fastify's `onRoute` hooks see the route, so what those hooks wrap around a handler wraps the
 * replacing one too: with tracing on, @fastify/otel's handler span (named after Nest's handler)
 * is still the parent of the database and upstream calls. A listed route registered any other
 * way fails at start-up.
 */
export function installFastRoutes(fastify: FastifyInstance, keys: readonly FastRouteKey[]): FastRoutes {
  let bound: ReadonlyMap<FastRouteKey, FastRouteHandler> = new Map();
  const wanted = new Set<string>(keys);
  let replacing: string | undefined;
  const route = fastify.route;
  fastify.route = function routeWithFastHandlers(this: FastifyInstance, options: RouteOptions) {
    const key = keyOf(options.method, options.url) as FastRouteKey;
    if (!wanted.has(key)) return route.call(this, options);
    const declared = options.handler;
    const fastRoute = function (this: FastifyInstance, request: FastifyRequest, reply: FastifyReply) {
      const handler = bound.get(key);
      return handler === undefined ? declared.call(this, request, reply) : handler(request, reply);
    };
    // tracing names the handler's span after the function
    Object.defineProperty(fastRoute, 'name', { value: declared.name });
    replacing = key;
    try {
      return route.call(this, { ...options, handler: fastRoute as RouteHandlerMethod });
    } finally {
      replacing = undefined;
    }
  } as typeof fastify.route;
  fastify.addHook('onRoute', (options) => {
    const key = keyOf(options.method, options.url);
    if (wanted.has(key) && replacing !== key) throw new Error(`fast route ${key} must be registered through fastify.route()`);
  });
  return {
    bind(handlers) {
      for (const key of handlers.keys()) if (!wanted.has(key)) throw new Error(`fast route ${key} was not installed`);
      bound = handlers;
    },
  };
}
