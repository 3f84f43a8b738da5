import Fastify, { type FastifyInstance } from 'fastify';
import { describe, expect, it } from 'vitest';
import { installFastRoutes, type FastRouteHandler, type FastRouteKey } from '../../src/common/fast-routes';

const sending =
  (body: object): FastRouteHandler =>
  (_request, reply) =>
    Promise.resolve(reply.send(body));

/** The proxied routes stay declared as usual, but Fastify calls the bound handler for them. */
describe('installFastRoutes', () => {
  it('serves a listed route with the bound handler, the declared one until a handler is bound, and leaves other routes alone', async () => {
    const fastify = Fastify();
    const routes = installFastRoutes(fastify, ['POST /v1/query/:view_type']);
    // as Nest's adapter registers its routes
    fastify.route({ method: 'POST', url: '/v1/query/:view_type', handler: () => ({ by: 'declared' }) });
    fastify.post('/v1/other/:id', () => ({ by: 'other' }));
    await fastify.ready();
    const call = async (url: string) => (await fastify.inject({ method: 'POST', url })).json<{ by: string }>().by;

    expect(await call('/v1/query/orders')).toBe('declared');
    routes.bind(new Map<FastRouteKey, FastRouteHandler>([['POST /v1/query/:view_type', sending({ by: 'fast' })]]));
    expect(await call('/v1/query/orders')).toBe('fast');
    expect(await call('/v1/other/1')).toBe('other');
    expect(() => routes.bind(new Map<FastRouteKey, FastRouteHandler>([['GET /v1/other/:id', sending({})]]))).toThrow(/not installed/);
    await fastify.close();
  });

  it('names a route of every method (`@All`) `ALL /path` and serves each of its methods with the bound handler', async () => {
    const fastify = Fastify();
    const routes = installFastRoutes(fastify, ['ALL /v1/authz/forward']);
    fastify.route({ method: fastify.supportedMethods, url: '/v1/authz/forward', handler: () => ({ by: 'declared' }) });
    fastify.get('/v1/authz/other', () => ({ by: 'other' }));
    await fastify.ready();
    routes.bind(new Map<FastRouteKey, FastRouteHandler>([['ALL /v1/authz/forward', sending({ by: 'fast' })]]));
    for (const method of ['GET', 'POST', 'DELETE'] as const) {
      expect((await fastify.inject({ method, url: '/v1/authz/forward' })).json<{ by: string }>().by).toBe('fast');
    }
    expect((await fastify.inject({ method: 'GET', url: '/v1/authz/other' })).json<{ by: string }>().by).toBe('other');
    await fastify.close();
  });

  it('replaces the handler before onRoute hooks wrap it, keeping its name, and refuses a listed route registered another way', async () => {
    const fastify = Fastify();
    const wrapped: string[] = [];
    // what a tracing plugin's onRoute hook does: wrap the handler it is given
    fastify.addHook('onRoute', (route) => {
      const inner = route.handler;
      wrapped.push(inner.name);
      route.handler = function traced(this: FastifyInstance, ...args: Parameters<typeof inner>) {
        wrapped.push(`called ${inner.name}`);
        return inner.apply(this, args);
      } as typeof inner;
    });
    const routes = installFastRoutes(fastify, ['POST /v1/auth/signin', 'POST /v1/auth/signup']);
    fastify.route({
      method: 'POST',
      url: '/v1/auth/signin',
      handler: function declaredSignin() {
        return { by: 'declared' };
      },
    });
    expect(wrapped).toEqual(['declaredSignin']);
    await fastify.ready();
    routes.bind(new Map<FastRouteKey, FastRouteHandler>([['POST /v1/auth/signin', sending({ by: 'fast' })]]));
    expect((await fastify.inject({ method: 'POST', url: '/v1/auth/signin' })).json<{ by: string }>().by).toBe('fast');
    expect(wrapped).toEqual(['declaredSignin', 'called declaredSignin']);
    await fastify.close();

    const other = Fastify();
    installFastRoutes(other, ['POST /v1/auth/signup']);
    expect(() => other.post('/v1/auth/signup', () => ({}))).toThrow(/must be registered through fastify.route/);
    await other.close();
  });
});
