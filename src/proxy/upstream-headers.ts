import type { RequestContext } from '../common/request-context';
import { formatTraceparent } from '../observability/trace-context';
import type { Principal } from '../session/principal';

/** RFC 9110 §7.6.1 connection-specific headers, plus the legacy ones proxies still see. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'trailers',
  'transfer-encoding',
  'upgrade',
]);

/**
 * Request headers Gatehouse never passes on: the client's credentials (its token is never
 * forwarded), what it sets itself (identity, tenant, ids, trace), and what the HTTP client
 * recomputes (host, length).
 */
const NOT_FORWARDED = new Set([
  'host',
  'content-length',
  'expect',
  'authorization',
  'cookie',
  'x-tenant-id',
  'x-request-id',
  'x-correlation-id',
  'traceparent',
  // passed on only from the request context: with a valid traceparent, trimmed (identityHeaders)
  'tracestate',
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
]);

/** Response headers Gatehouse sets itself on every response. */
const NOT_RELAYED = new Set(['x-request-id', 'x-correlation-id', 'traceparent']);

export type HeaderValue = string | string[] | undefined;
export type HeaderMap = Record<string, HeaderValue>;

/** Names listed in a Connection header are hop-by-hop too. */
const NONE_LISTED: ReadonlySet<string> = new Set();

function connectionListed(headers: HeaderMap): ReadonlySet<string> {
  const value = headers.connection;
  // nearly every message says one of these, which name no header beyond the hop-by-hop ones
  if (value === undefined || value === 'keep-alive' || value === 'close') return NONE_LISTED;
  const listed = new Set<string>();
  for (const item of (Array.isArray(value) ? value.join(',') : value).split(',')) {
    const name = item.trim().toLowerCase();
    if (name !== '') listed.add(name);
  }
  return listed;
}

/** The client's headers that may travel upstream: no hop-by-hop, no credentials, no spoofed `x-auth-*`. */
export function forwardableRequestHeaders(inbound: HeaderMap): Record<string, string | string[]> {
  const listed = connectionListed(inbound);
  const out: Record<string, string | string[]> = {};
  for (const rawName in inbound) {
    const value = inbound[rawName];
    if (value === undefined) continue;
    const name = rawName.toLowerCase();
    if (HOP_BY_HOP.has(name) || listed.has(name) || NOT_FORWARDED.has(name) || name.startsWith('x-auth-')) continue;
    out[name] = value;
  }
  return out;
}

/** Everything an upstream call carries: the client's forwardable headers, then Gatehouse's own (CONTRACT §7), in one object. */
export function upstreamRequestHeaders(inbound: HeaderMap, identity: UpstreamIdentity): Record<string, string | string[]> {
  const headers = forwardableRequestHeaders(inbound);
  stampIdentity(headers, identity);
  return headers;
}

/** The upstream's response headers the client may see: no hop-by-hop, not Gatehouse's own ids. */
export function relayableResponseHeaders(upstream: HeaderMap): Record<string, string | string[]> {
  const listed = connectionListed(upstream);
  const out: Record<string, string | string[]> = {};
  for (const rawName in upstream) {
    const value = upstream[rawName];
    if (value === undefined) continue;
    const name = rawName.toLowerCase();
    if (HOP_BY_HOP.has(name) || listed.has(name) || NOT_RELAYED.has(name)) continue;
    out[name] = value;
  }
  return out;
}

export interface UpstreamIdentity {
  principal: Principal;
  tenantId: string | undefined;
  /** the internal JWT minted for this service kind */
  internalToken: string;
  context: RequestContext;
}

/** What every upstream call carries (CONTRACT §7): who, for which tenant, and the request's ids. */
export function identityHeaders(identity: UpstreamIdentity): Record<string, string> {
  const headers: Record<string, string> = {};
  stampIdentity(headers, identity);
  return headers;
}

/** The §7 identity headers written into `headers` (an object the caller builds anyway). */
export function stampIdentity(headers: Record<string, string | string[]>, identity: UpstreamIdentity): void {
  const { principal, tenantId, internalToken, context } = identity;
  headers.authorization = `Bearer ${internalToken}`;
  headers['x-auth-principal-id'] = principal.id;
  headers['x-auth-principal-type'] = principal.type;
  headers['x-request-id'] = context.requestId;
  headers['x-correlation-id'] = context.correlationId;
  headers.traceparent = formatTraceparent(context);
  if (context.tracestate !== undefined) headers.tracestate = context.tracestate;
  if (tenantId !== undefined) headers['x-tenant-id'] = tenantId;
}

/**
 * The same §7 identity headers as `stampIdentity`, appended to a raw header list (name, value,
 * name, value …): node:http2's `request()` takes such a list as it is, where it copies a header
 * object into a prototype-less one and walks its keys (the gRPC upstream leg).
 */
export function appendIdentity(pairs: string[], identity: UpstreamIdentity): void {
  const { principal, tenantId, internalToken, context } = identity;
  pairs.push(
    'authorization',
    `Bearer ${internalToken}`,
    'x-auth-principal-id',
    principal.id,
    'x-auth-principal-type',
    principal.type,
    'x-request-id',
    context.requestId,
    'x-correlation-id',
    context.correlationId,
    'traceparent',
    formatTraceparent(context),
  );
  if (context.tracestate !== undefined) pairs.push('tracestate', context.tracestate);
  if (tenantId !== undefined) pairs.push('x-tenant-id', tenantId);
}
