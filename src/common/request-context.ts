import { AsyncLocalStorage } from 'node:async_hooks';

/** What every log line of a request carries; lives in AsyncLocalStorage, never in request-scoped providers. */
export interface RequestContext {
  requestId: string;
  correlationId: string;
  traceId: string;
  spanId: string;
  traceFlags: string;
  /** the inbound tracestate, passed upstream with the traceparent (validated, at most 32 members) */
  tracestate?: string;
  clientIp: string;
  userAgent?: string;
  /** subject of the verified client certificate (own TLS listener, or the edge's Client-Cert) */
  clientCertSubject?: string;
  principalId?: string;
  principalType?: 'user' | 'service_account';
  tenantId?: string;
  authz?: { decision: 'allow' | 'deny'; reason: string };
  upstream?: string;
  /** the original method and path a forward-auth decision was asked about (CONTRACT §10) */
  forwarded?: string;
  /** the §9/§4 scope that refused the request with 429, named in its log line */
  rateLimited?: string;
}

const storage = new AsyncLocalStorage<RequestContext>();

export const requestContext = {
  run<T>(context: RequestContext, fn: () => T): T {
    return storage.run(context, fn);
  },
  get(): RequestContext | undefined {
    return storage.getStore();
  },
  /**
   * Runs `fn` outside any request: background work started from a request (a timer, a
   * nudge) must not log under that request's ids.
   */
  outside<T>(fn: () => T): T {
    return storage.exit(fn);
  },
};
