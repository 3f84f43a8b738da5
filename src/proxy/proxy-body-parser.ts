import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyRequest } from 'fastify';

/** Routes whose JSON body goes upstream untouched (bytes as received, never re-serialized). */
const PASSTHROUGH_ROUTES = ['/v1/query/', '/admin/runner/'];

/**
 * Replaces the JSON body parser with one that keeps the raw bytes on proxied routes and
 * parses everywhere else exactly as before. Fastify still reads the body (so the 1 MiB limit
 * and content-length checks stay); a proxied body is then relayed byte for byte.
 * Must run before the app initialises its routes.
 */
export function installProxyBodyParser(app: NestFastifyApplication, bodyLimit: number): void {
  const fastify = app.getHttpAdapter().getInstance();
  const { onProtoPoisoning, onConstructorPoisoning } = fastify.initialConfig as {
    onProtoPoisoning?: 'error' | 'remove' | 'ignore';
    onConstructorPoisoning?: 'error' | 'remove' | 'ignore';
  };
  const parseJson = fastify.getDefaultJsonParser(onProtoPoisoning ?? 'error', onConstructorPoisoning ?? 'error');
  app.useBodyParser(
    'application/json',
    { bodyLimit },
    (request: FastifyRequest, body: Buffer, done: (error: Error | null, body?: unknown) => void) => {
      const route = request.routeOptions.url ?? '';
      if (PASSTHROUGH_ROUTES.some((prefix) => route.startsWith(prefix))) {
        done(null, body);
        return;
      }
      // typed as possibly async; Fastify's default JSON parser completes through `done`
      void parseJson(request, body.toString('utf8'), done);
    },
  );
}
