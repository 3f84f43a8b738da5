import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { AppError } from '../common/app-error';
import { OAUTH_ROUTES } from '../common/oauth-errors';
import { duplicateAuthorizationError, headerCount } from '../common/authorization-header';
import { mapIn } from '../common/nested-map';
import { firstHeader } from '../common/header-value';
import { requestContext, type RequestContext } from '../common/request-context';
import { counterSeries, histogramSeries, type MetricsService } from './metrics.service';
import { logRequest, openRequestContext } from './request-edge';
import { formatTraceparent } from './trace-context';

declare module 'fastify' {
  interface FastifyRequest {
    ctx: RequestContext;
    /** performance.now() when the request arrived, for the line of a request whose client hung up */
    arrivedAt: number;
    /**
     * The matched route's template (undefined: no route matched) and body limit, read once per
     * request: Fastify's `routeOptions` getter builds a new object of a dozen fields on every read.
     */
    routeUrl: string | undefined;
    routeBodyLimit: number;
  }
}

/** The status a request whose client hung up is logged and counted with (nginx's convention). */
export const CLIENT_CLOSED_REQUEST = 499;

/** Body limit for /v1/auth/* (CONTRACT §1): refused before any parsing or hashing. */
export const AUTH_BODY_LIMIT = 16 * 1024;
/** Routes that accept application/x-www-form-urlencoded besides JSON: the OAuth endpoints (token, introspect, revoke). */
const FORM_ROUTES = OAUTH_ROUTES;

/** Routes whose body is ignored, unread (the forward-auth decision API, CONTRACT §10). */
const BODY_IGNORED_ROUTES = new Set(['/v1/authz/forward']);

interface Series {
  requests: { inc(): void };
  duration: { observe(value: number): void };
}

/** Body limit everywhere else, including proxied routes. */
export const DEFAULT_BODY_LIMIT = 1024 * 1024;

function header(request: FastifyRequest, name: string): string | undefined {
  return firstHeader(request.headers[name]);
}

/**
 * Calls `onHangUp` for each request whose connection closed before its response finished (its
 * client hung up). One 'close' listener per connection, added at its first request, where
 * Fastify's onRequestAbort hook adds one to every request: the requests a connection still has
 * unanswered when it closes are the ones whose client hung up. Returns what onResponse (run at
 * the response's 'finish') asks: false only for a request already reported as hung up.
 */
export function trackHangUps(fastify: FastifyInstance, onHangUp: (request: FastifyRequest) => void): (request: FastifyRequest) => boolean {
  const unanswered = new WeakMap<Socket, Set<FastifyRequest>>();
  /** Requests whose line was written as 499. */
  const hungUp = new WeakSet<FastifyRequest>();
  const reportHangUp = (request: FastifyRequest) => {
    hungUp.add(request);
    onHangUp(request);
  };
  fastify.addHook('onRequest', (request, _reply, done) => {
    const socket = request.raw.socket;
    let pending = unanswered.get(socket);
    if (pending === undefined) {
      const requests = new Set<FastifyRequest>();
      unanswered.set(socket, requests);
      socket.on('close', () => {
        for (const request of requests) reportHangUp(request);
        requests.clear();
      });
      pending = requests;
    }
    pending.add(request);
    done();
  });
  // What onResponse asks is whether the line was already written as 499, not whether the request
  // was tracked: one that reached onResponse without the tracking hook (an earlier onRequest hook
  // answered it) still gets its line, also on a keep-alive connection tracked for its other requests.
  return (request) => {
    unanswered.get(request.raw.socket)?.delete(request);
    return !hungUp.has(request);
  };
}

/**
 * Installs what every request passes through before Nest sees it: ids and trace context
 * (in AsyncLocalStorage and on the response), per-route body limits, and one log line
 * plus metrics when the response is sent. Must run before Nest registers its routes.
 */
export function installHttpPipeline(
  fastify: FastifyInstance,
  logger: Logger,
  metrics: MetricsService,
  options: { clientCertSubject?: (request: IncomingMessage) => string | undefined } = {},
): void {
  fastify.decorateRequest('ctx', null as unknown as RequestContext);
  fastify.decorateRequest('arrivedAt', 0);
  fastify.decorateRequest('routeUrl', undefined);
  fastify.decorateRequest('routeBodyLimit', 0);

  // JSON in and out (CONTRACT §1): no text/plain bodies; form bodies only where declared.
  fastify.removeContentTypeParser('text/plain');

  fastify.addHook('onRoute', (route) => {
    if (route.url.startsWith('/v1/auth')) route.bodyLimit = AUTH_BODY_LIMIT;
  });

  // A client that hangs up before the answer gets no response, so onResponse never runs: its
  // request still gets its one line, with nginx's 499 (client closed request) as the status.
  // Tracked first, so a request an onRequest hook refuses is tracked too.
  const answered = trackHangUps(fastify, (request) => record(request, CLIENT_CLOSED_REQUEST, performance.now() - request.arrivedAt));

  fastify.addHook('onRequest', (request, reply, done) => {
    request.arrivedAt = performance.now();
    const { url: routeUrl, bodyLimit } = request.routeOptions;
    request.routeUrl = routeUrl;
    request.routeBodyLimit = bodyLimit;
    const context = openRequestContext({
      requestId: request.id,
      incoming: request.raw,
      traceparent: request.headers.traceparent,
      tracestate: request.headers.tracestate,
      correlationId: request.headers['x-correlation-id'],
      userAgent: header(request, 'user-agent'),
      clientIp: request.ip,
      clientCertSubject: options.clientCertSubject?.(request.raw),
    });
    request.ctx = context;
    reply.header('x-request-id', context.requestId);
    reply.header('x-correlation-id', context.correlationId);
    reply.header('traceparent', formatTraceparent(context));
    if (routeUrl !== undefined && BODY_IGNORED_ROUTES.has(routeUrl)) {
      // A proxy may pass the original request's body headers along; without them Fastify
      // parses nothing, and Node discards the unread body when the response ends.
      delete request.headers['content-type'];
      delete request.headers['content-length'];
      delete request.headers['transfer-encoding'];
    }
    if (headerCount(request.raw.rawHeaders, 'authorization') > 1) {
      requestContext.run(context, () => done(duplicateAuthorizationError()));
      return;
    }
    const contentType = header(request, 'content-type')?.toLowerCase() ?? '';
    if (contentType.startsWith('application/x-www-form-urlencoded') && !FORM_ROUTES.has(routeUrl ?? '')) {
      requestContext.run(context, () => done(new AppError('unsupported_media_type')));
      return;
    }
    requestContext.run(context, done);
  });

  // prom-client validates and hashes the label values on every call, even through a labelled
  // child; the series are found once (metrics.service.ts) and kept here by route template, method
  // and status (the route and method strings are the same objects on
  // every request, so these lookups hash nothing new; routes are templates and methods a fixed
  // set, so the maps stay small)
  const series = new Map<string, Map<string, Map<number, Series>>>();
  const seriesOf = (method: string, route: string, status: number): Series => {
    const ofMethod = mapIn(mapIn(series, route), method);
    let child = ofMethod.get(status);
    if (child === undefined) {
      child = {
        requests: counterSeries(metrics.httpRequests, { method, route, status: String(status) }),
        duration: histogramSeries(metrics.httpDuration, { method, route }),
      };
      ofMethod.set(status, child);
    }
    return child;
  };
  const record = (request: FastifyRequest, status: number, durationMs: number): void => {
    const context = request.ctx;
    const route = request.routeUrl ?? 'unmatched';
    const child = seriesOf(request.method, route, status);
    child.requests.inc();
    child.duration.observe(durationMs / 1000);
    if (context !== null) logRequest(logger, context, { method: request.method, route, status, durationMs });
  };
  fastify.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done) => {
    if (answered(request)) record(request, reply.statusCode, reply.elapsedTime);
    done();
  });
}
