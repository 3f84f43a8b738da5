import { ArgumentsHost, Catch, HttpException, Inject, type ExceptionFilter } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { LOGGER } from '../observability/logger';
import { MetricsService } from '../observability/metrics.service';
import { AppError } from './app-error';
import { dependencyFailureAsAppError } from './dependency-failure';
import type { ErrorCode } from './error-codes';
import { OAUTH_ROUTES, oauthErrorOf } from './oauth-errors';
import { problemOf, PROBLEM_CONTENT_TYPE } from './problem-details';
import { requestContext } from './request-context';

interface FastifyLikeError {
  code?: string;
  statusCode?: number;
}

/** Errors raised by Fastify itself (body parsing, limits) before a handler runs. */
function fastifyErrorCode(error: FastifyLikeError): ErrorCode | undefined {
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return 'payload_too_large';
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return 'unsupported_media_type';
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return 'malformed_json';
    default:
      return undefined;
  }
}

function statusCode(status: number): ErrorCode {
  switch (status) {
    case 400:
      return 'validation_failed';
    case 401:
      return 'unauthenticated';
    case 403:
      return 'forbidden';
    case 404:
    case 405:
      return 'not_found';
    case 409:
      return 'conflict';
    case 413:
      return 'payload_too_large';
    case 415:
      return 'unsupported_media_type';
    case 429:
      return 'rate_limited';
    case 503:
      return 'unavailable';
    default:
      return 'internal_error';
  }
}

const PROBED_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

/**
 * The methods the path of an unmatched request does answer (RFC 9110 §15.5.6: 405 with Allow,
 * not 404, when the resource exists). OPTIONS counts only beside another method: with CORS on,
 * the preflight route matches every path.
 */
function allowedMethods(request: FastifyRequest): string[] {
  const path = request.url.split('?')[0] ?? '/';
  const allowed = PROBED_METHODS.filter((method) => method !== request.method && request.server.findRoute({ method, url: path }) !== null);
  return allowed.some((method) => method !== 'OPTIONS') ? allowed : [];
}

/** The HTTP edge of the error mapping: every non-2xx produced by Gatehouse is RFC 9457 problem+json. */
@Catch()
export class ProblemFilter implements ExceptionFilter {
  constructor(
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly metrics: MetricsService,
  ) {}

  catch(raised: unknown, host: ArgumentsHost): void {
    if (host.getType() !== 'http') throw raised;
    const request = host.switchToHttp().getRequest<FastifyRequest>();
    // the database, not this request, is at fault: 503 and a warning without a stack
    const dependencyFailure = dependencyFailureAsAppError(raised);
    if (dependencyFailure !== undefined) {
      this.metrics.dependencyErrors.inc({ dependency: 'database' });
      this.logger.warn({ dependency: 'database', reason: dependencyFailure.options.logReason }, 'dependency unavailable; answered 503');
    }
    const exception = dependencyFailure ?? raised;
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    const requestId = request.ctx?.requestId ?? request.id;
    let code: ErrorCode;
    let detail: string | undefined;
    let appError: AppError | undefined;

    if (exception instanceof AppError) {
      appError = exception;
      code = exception.code;
      detail = exception.options.detail;
      if (exception.options.logReason !== undefined && dependencyFailure === undefined) {
        this.logger.info({ error_code: code, reason: exception.options.logReason }, 'request refused');
      }
    } else if (exception instanceof SyntaxError && (exception as FastifyLikeError).statusCode === 400) {
      code = 'malformed_json';
    } else if (exception !== null && typeof exception === 'object' && fastifyErrorCode(exception as FastifyLikeError) !== undefined) {
      code = fastifyErrorCode(exception as FastifyLikeError)!;
    } else if (exception instanceof HttpException && exception.getStatus() === 404 && request.routeOptions?.url === undefined) {
      // no route for this method: 405 with Allow when the path answers other methods
      const allowed = allowedMethods(request);
      if (allowed.length > 0) {
        appError = new AppError('method_not_allowed', { headers: { allow: allowed.join(', ') } });
        code = 'method_not_allowed';
      } else {
        code = 'not_found';
      }
    } else if (exception instanceof HttpException) {
      // Nest wraps Fastify's own errors (body parsing, limits) and keeps them as the cause
      code = fastifyErrorCode((exception.cause ?? {}) as FastifyLikeError) ?? statusCode(exception.getStatus());
    } else if (
      exception !== null &&
      typeof exception === 'object' &&
      typeof (exception as FastifyLikeError).statusCode === 'number' &&
      (exception as FastifyLikeError).statusCode! < 500
    ) {
      code = statusCode((exception as FastifyLikeError).statusCode!);
    } else {
      code = 'internal_error';
      this.logger.error({ err: exception, request_id: requestContext.get()?.requestId ?? requestId }, 'unhandled error');
    }

    const body = problemOf(code, requestId, detail, appError?.options.errors, {
      status: appError?.options.status,
      extensions: appError?.options.extensions,
    });
    const status = body.status;
    const oauthRoute = OAUTH_ROUTES.has(request.routeOptions?.url ?? '');
    // OAuth client authentication is not Bearer: those routes challenge with Basic only where the
    // client used it (RFC 6749 §5.2), so client libraries read the error body instead of a challenge
    if (status === 401 && !oauthRoute) {
      reply.header('www-authenticate', code === 'invalid_token' ? 'Bearer error="invalid_token"' : 'Bearer');
    }
    for (const [name, value] of Object.entries(appError?.options.headers ?? {})) reply.header(name, value);
    if (reply.sent) return;
    if (oauthRoute) {
      // CONTRACT §12: plain JSON with RFC 6749's members, which OAuth client libraries read
      const oauth = { ...body, error: (appError?.options.extensions?.error as string | undefined) ?? oauthErrorOf(code) };
      void reply
        .status(status)
        .type('application/json')
        .send(JSON.stringify({ ...oauth, error_description: detail ?? body.title }));
      return;
    }
    void reply.status(status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(body));
  }
}
