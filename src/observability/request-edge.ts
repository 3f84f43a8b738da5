import type { Logger } from 'pino';
import type { RequestContext } from '../common/request-context';
import { AppError } from '../common/app-error';
import { randomUuid } from '../common/uuid';
import { requestLineLogger, requestLineWriter } from './logger';
import { acceptCorrelationId, acceptTracestate, continueTrace } from './trace-context';

/** What a transport reads from its request to build the context (headers or gRPC metadata). */
export interface RequestEdgeInput {
  /** the transport's own id when it has one (Fastify's genReqId); otherwise a new UUID */
  requestId?: string;
  /** Node's request object (HTTP): with tracing on, the context adopts its server span's ids */
  incoming?: object;
  traceparent: string | string[] | undefined;
  /** the inbound W3C tracestate, kept only with a valid traceparent */
  tracestate?: string | string[] | undefined;
  correlationId: string | string[] | undefined;
  userAgent: string | undefined;
  clientIp: string;
  /** subject of the verified client certificate (own TLS listener, or the edge's Client-Cert) */
  clientCertSubject?: string;
}

/** How a request ended, for its one log line. */
export interface RequestOutcome {
  method: string;
  route: string;
  /** an HTTP status, or a gRPC outcome name */
  status: number | string;
  durationMs: number;
}

/**
 * The one place a request's context is born (CONTRACT §1: ids kept or generated, traceparent
 * continued with a new span), whatever the transport. HTTP, gRPC and the WebSocket handshake
 * are thin adapters around this and `logRequest`, as they are around RequestAuthorizer.
 */
export function openRequestContext(input: RequestEdgeInput): RequestContext {
  const trace = continueTrace(input.traceparent, input.incoming);
  const tracestate = acceptTracestate(input.tracestate, input.traceparent);
  const context: RequestContext = {
    requestId: input.requestId ?? randomUuid(),
    correlationId: acceptCorrelationId(input.correlationId) ?? randomUuid(),
    traceId: trace.traceId,
    spanId: trace.spanId,
    traceFlags: trace.traceFlags,
    clientIp: input.clientIp,
    userAgent: input.userAgent === undefined || input.userAgent.length <= 512 ? input.userAgent : input.userAgent.slice(0, 512),
  };
  if (input.clientCertSubject !== undefined) context.clientCertSubject = input.clientCertSubject;
  if (tracestate !== undefined) context.tracestate = tracestate;
  return context;
}

/** Records what the authorizer decided for the log line (allow, or the reason of a deny). */
export function recordAuthorization(
  context: RequestContext,
  result: { principal?: { id: string; type: 'user' | 'service_account' }; tenantId?: string; decision?: RequestContext['authz'] },
): void {
  context.principalId = result.principal?.id;
  context.principalType = result.principal?.type;
  context.tenantId = result.tenantId;
  context.authz = result.decision;
}

/** A refusal by policy is logged with its reason (never shown to the client). */
export function recordDenial(context: RequestContext, error: unknown): void {
  if (error instanceof AppError && (error.code === 'forbidden' || error.code === 'tenant_forbidden')) {
    context.authz = { decision: 'deny', reason: error.options.logReason ?? 'deny' };
  }
}

/** The one JSON log line per request (CONTRACT §1 ids, §8 operations), every transport alike. */
export function logRequest(logger: Logger, context: RequestContext, outcome: RequestOutcome): void {
  const writer = requestLineWriter(logger);
  if (writer === undefined) {
    requestLineLogger(logger).info(requestLineFields(context, outcome), 'request');
    return;
  }
  if (!writer.enabled()) return;
  const json = JSON.stringify;
  // ids, trace ids and the method are quoted as they are: they cannot hold a character JSON escapes
  // (generated UUIDs and hex, an inbound correlation id or traceparent only after its pattern
  // matched, an HTTP method token); everything else goes through JSON.stringify
  let line = `${writer.head()},"request_id":"${context.requestId}","correlation_id":"${context.correlationId}","trace_id":"${
    context.traceId
  }","span_id":"${context.spanId}","principal_id":${context.principalId === undefined ? 'null' : repeatedJson(context.principalId)},"tenant_id":${
    context.tenantId === undefined ? 'null' : repeatedJson(context.tenantId)
  },"method":"${outcome.method}","route":${repeatedJson(outcome.route)},"status":${
    typeof outcome.status === 'number' ? outcome.status : json(outcome.status)
  },"duration_ms":${durationJson(outcome.durationMs)}`;
  if (context.upstream !== undefined) line += `,"upstream":${json(context.upstream)}`;
  if (context.forwarded !== undefined) line += `,"forwarded":${json(context.forwarded)}`;
  if (context.authz !== undefined) {
    line += `,"authz":{"decision":"${context.authz.decision}","reason":${repeatedJson(context.authz.reason)}}`;
  }
  if (context.rateLimited !== undefined) line += `,"rate_limited":${json(context.rateLimited)}`;
  // null, not a bare undefined, when the socket was gone before its address was read
  line += `,"ip":${context.clientIp === undefined ? 'null' : repeatedJson(context.clientIp)}`;
  if (context.clientCertSubject !== undefined) line += `,"client_cert_subject":${json(context.clientCertSubject)}`;
  writer.write(`${line},"msg":"request"}\n`);
}

/**
 * `Math.round(ms * 100) / 100` as JSON, the same text, from integers: a whole number is printed
 * from V8's number-string cache, where a fraction went through its double-to-shortest-string
 * conversion on every line (seen in the gRPC path's profile).
 */
export function durationJson(ms: number): string {
  const hundredths = Math.round(ms * 100);
  if (!(hundredths >= 0 && hundredths <= 0x7fffffff)) return String(hundredths / 100);
  const whole = Math.floor(hundredths / 100);
  const cents = hundredths - whole * 100;
  if (cents === 0) return `${whole}`;
  if (cents % 10 === 0) return `${whole}.${cents / 10}`;
  return `${whole}.${cents < 10 ? '0' : ''}${cents}`;
}

/**
 * Values that repeat from line to line (route templates, principals, tenants, addresses, decision
 * reasons) serialised once each: a lookup of a string seen before costs less than serialising it.
 */
const jsonOfRepeated = new Map<string, string>();
function repeatedJson(value: string): string {
  let encoded = jsonOfRepeated.get(value);
  if (encoded === undefined) {
    encoded = JSON.stringify(value);
    if (jsonOfRepeated.size >= 4096) jsonOfRepeated.clear();
    jsonOfRepeated.set(value, encoded);
  }
  return encoded;
}

/** The line's fields, for a logger without a request-line writer (the same names and values). */
function requestLineFields(context: RequestContext, outcome: RequestOutcome): Record<string, unknown> {
  return {
    request_id: context.requestId,
    correlation_id: context.correlationId,
    trace_id: context.traceId,
    span_id: context.spanId,
    principal_id: context.principalId ?? null,
    tenant_id: context.tenantId ?? null,
    method: outcome.method,
    route: outcome.route,
    status: outcome.status,
    duration_ms: Math.round(outcome.durationMs * 100) / 100,
    upstream: context.upstream,
    forwarded: context.forwarded,
    authz: context.authz,
    rate_limited: context.rateLimited,
    ip: context.clientIp,
    client_cert_subject: context.clientCertSubject,
  };
}
