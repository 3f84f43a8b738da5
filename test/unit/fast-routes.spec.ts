import Fastify from 'fastify';
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
    fastify.post('/v1/query/:view_type', () => ({ by: 'declared' }));
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
    fastify.all('/v1/authz/forward', () => ({ by: 'declared' }));
    fastify.get('/v1/authz/other', () => ({ by: 'other' }));
    await fastify.ready();
    routes.bind(new Map<FastRouteKey, FastRouteHandler>([['ALL /v1/authz/forward', sending({ by: 'fast' })]]));
    for (const method of ['GET', 'POST', 'DELETE'] as const) {
      expect((await fastify.inject({ method, url: '/v1/authz/forward' })).json<{ by: string }>().by).toBe('fast');
    }
    expect((await fastify.inject({ method: 'GET', url: '/v1/authz/other' })).json<{ by: string }>().by).toBe('other');
    await fastify.close();
  });
});
