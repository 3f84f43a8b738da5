import type { INestApplicationContext } from '@nestjs/common';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import {
  EXCEPTION_FILTERS_METADATA,
  GUARDS_METADATA,
  HEADERS_METADATA,
  HTTP_CODE_METADATA,
  INTERCEPTORS_METADATA,
  PIPES_METADATA,
} from '@nestjs/common/constants';
import { AUTH_DECLARATION, type AuthDeclaration } from '../../common/auth-declaration';
import type { FastRouteHandler, FastRouteKey } from '../../common/fast-routes';
import type { TokenResponse } from '../../session/token-response';
import type { MfaPendingResponse } from '../mfa/mfa-challenge.service';
import { PasswordAuthController, signinBodyPipe } from './password-auth.controller';

/** The password sign-in, served by Fastify calling the controller method directly (common/fast-routes.ts). */
export const SIGNIN_FAST_ROUTES = ['POST /v1/auth/signin'] as const satisfies readonly FastRouteKey[];

interface SigninDeclarations {
  status: number;
  headers: readonly { name: string; value: string }[];
}

/** Route-level additions the fast route does not run: declaring one on the method or its controller stops start-up. */
const SKIPPED_BY_THE_FAST_ROUTE = [GUARDS_METADATA, INTERCEPTORS_METADATA, PIPES_METADATA, EXCEPTION_FILTERS_METADATA];

/**
 * What the controller method declares (`@Public`, `@HttpCode`, `@Header`): read from the route,
 * not restated. A guard, interceptor, pipe or filter added later to the method or its controller
 * (e.g. `@AuthIpLimited()`) would be skipped silently by the fast route, so it stops start-up.
 */
function declarationsOf(handler: object, controller: object): SigninDeclarations {
  for (const key of SKIPPED_BY_THE_FAST_ROUTE) {
    for (const target of [handler, controller]) {
      const declared = Reflect.getMetadata(key, target) as unknown[] | undefined;
      if (declared !== undefined && declared.length > 0) {
        throw new Error(`the fast sign-in route does not run ${key} declared on ${target === handler ? 'signin' : 'its controller'}`);
      }
    }
  }
  const declaration = Reflect.getMetadata(AUTH_DECLARATION, handler) as AuthDeclaration | undefined;
  const status = Reflect.getMetadata(HTTP_CODE_METADATA, handler) as number | undefined;
  const headers = (Reflect.getMetadata(HEADERS_METADATA, handler) as { name: string; value: string }[] | undefined) ?? [];
  if (declaration?.kind !== 'public' || status === undefined) {
    throw new Error('the fast sign-in route must declare @Public and @HttpCode');
  }
  return { status, headers };
}

/**
 * `POST /v1/auth/signin` without Nest's per-request chain (execution context, the two global
 * guards, the body pipe through the parameter factory, the response controller), which took
 * about as much of a sign-in's main thread as the sign-in's own code. What that chain does for
 * this route, in the same order: AuthGuard lets a `@Public` route through; AdminWriteLimitGuard
 * skips everything outside `/admin/`; then Nest sets the declared status (200) and headers
 * (`Cache-Control: no-store`, so error answers carry it too, as before), runs the body pipe
 * (the same ZodValidationPipe instance: same 400 `validation_failed` and paths) and the method.
 * Its result is sent as Nest's adapter sends it (`reply.send(object)`), and an error is answered
 * by Nest's exception layer from inside the handler, as Nest's router does. Everything
 * outside Nest's chain — request id, client address, log line, metrics, trace span, CORS,
 * security headers, body parsing and limits — is Fastify's hooks and applies unchanged; the
 * sign-in limiters and the hasher's bound are the service's.
 */
export function signinFastHandlers(app: INestApplicationContext): ReadonlyMap<FastRouteKey, FastRouteHandler> {
  const controller = app.get(PasswordAuthController);
  const { status, headers } = declarationsOf(PasswordAuthController.prototype.signin, PasswordAuthController);
  return new Map<FastRouteKey, FastRouteHandler>([
    [
      SIGNIN_FAST_ROUTES[0],
      (request, reply) => {
        reply.code(status);
        for (const { name, value } of headers) reply.header(name, value);
        let pending: Promise<TokenResponse | MfaPendingResponse>;
        try {
          pending = controller.signin(signinBodyPipe.transform(request.body), request);
        } catch (error) {
          pending = Promise.reject(error as Error);
        }
        return pending.then(
          (result) => {
            reply.send(result);
          },
          (error: unknown) => answerError(error, request, reply),
        );
      },
    ],
  ]);
}

/**
 * An error answered inside the handler, as Nest's router does (its exception layer, which is what
 * Fastify's error handler is: the same ProblemFilter), not handed to Fastify: the handler still
 * ends normally, so the trace looks as it did (no error status on the handler and request spans,
 * no onError hooks) and the body and headers are the filter's.
 */
// Fastify's error handler first runs the adapter's mapping: a FastifyError or http-errors object
// under 500 thrown by the sign-in service would reach the filter as an HttpException, which the
// Nest route never did. No sign-in error has that shape today.
async function answerError(error: unknown, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  // typed as returning nothing; Nest's returns the promise of its filters
  await Promise.resolve(request.server.errorHandler.call(request.server, error as FastifyError, request, reply) as unknown);
}
