import http from 'node:http';
import type { Duplex } from 'node:stream';
import proxyAddr from '@fastify/proxy-addr';
import type { AuthDeclaration } from '../common/auth-declaration';
import { AppError } from '../common/app-error';
import { httpStatusOf } from '../common/error-codes';
import { problemOf, PROBLEM_CONTENT_TYPE } from '../common/problem-details';
import type { RequestContext } from '../common/request-context';
import { firstHeader } from '../common/header-value';

/** The WebSocket path and what it requires; listed in the route-declarations snapshot too. */
export const SUBSCRIBE_PATH = '/v1/subscribe/:view_type';
export const SUBSCRIBE_DECLARATION: AuthDeclaration = {
  kind: 'requires',
  right: 'streams.subscribe',
  tenant: 'required',
  resource: 'view_type',
  policy: true,
};
/** The gateway's path: the adapter hands it every upgrade below it (`/v1/subscribe/*`). */
export const SUBSCRIBE_PREFIX = '/v1/subscribe';
const SUBSCRIBE_PATTERN = /^\/v1\/subscribe\/([^/]+)$/;

export interface SubscribeTarget {
  viewType: string;
  /** the query string to pass upstream (tenant_id removed), with its leading `?` */
  upstreamQuery: string;
  tenantFromQuery: string | undefined;
}

/** Matches `/v1/subscribe/{view_type}`; undefined for any other path. */
export function matchSubscribePath(url: string): SubscribeTarget | undefined {
  const parsed = new URL(url, 'http://gatehouse.invalid');
  const match = SUBSCRIBE_PATTERN.exec(parsed.pathname);
  if (match === null) return undefined;
  let viewType: string;
  try {
    viewType = decodeURIComponent(match[1]!);
  } catch {
    return undefined;
  }
  const tenantFromQuery = parsed.searchParams.get('tenant_id') ?? undefined;
  parsed.searchParams.delete('tenant_id');
  const query = parsed.searchParams.toString();
  return { viewType, upstreamQuery: query === '' ? '' : `?${query}`, tenantFromQuery };
}

/** A client's Sec-WebSocket-Key: 16 bytes in base64 (RFC 6455 §4.1). */
const WEBSOCKET_KEY = /^[+/0-9A-Za-z]{22}==$/;

function invalidHeader(header: string, message: string, headers?: Record<string, string>): AppError {
  return new AppError('validation_failed', {
    detail: 'The request has invalid fields.',
    errors: [{ path: header, message }],
    headers,
    logReason: `websocket handshake: ${header} ${message}`,
  });
}

/**
 * Whether the request is a WebSocket opening handshake a server may answer with 101 (RFC 6455
 * §4.2.1, the checks `ws` makes): GET, `Upgrade: websocket`, a well-formed Sec-WebSocket-Key and
 * version 13 (or 8). Decided from the request alone, before anything is looked up or reserved;
 * the refusal is the problem to answer, undefined for a well-formed handshake.
 */
export function malformedHandshake(request: http.IncomingMessage): AppError | undefined {
  if (request.method !== 'GET') {
    return new AppError('method_not_allowed', {
      headers: { allow: 'GET' },
      logReason: `websocket handshake with method ${request.method}`,
    });
  }
  if (firstHeader(request.headers.upgrade)?.toLowerCase() !== 'websocket') return invalidHeader('upgrade', 'must be websocket');
  const key = firstHeader(request.headers['sec-websocket-key']);
  if (key === undefined || !WEBSOCKET_KEY.test(key)) return invalidHeader('sec-websocket-key', 'must be 16 bytes in base64');
  const version = firstHeader(request.headers['sec-websocket-version']);
  if (version !== '13' && version !== '8') {
    // RFC 6455 §4.2.2: the refusal names the versions this server speaks
    return invalidHeader('sec-websocket-version', 'must be 13 or 8', { 'sec-websocket-version': '13, 8' });
  }
  return undefined;
}

/**
 * The bearer token of a handshake: the Authorization header, or — for browsers, which cannot
 * set headers on a WebSocket — the subprotocol list `bearer, <token>`.
 */
export function handshakeAuthorization(request: http.IncomingMessage): string | undefined {
  const header = firstHeader(request.headers.authorization);
  if (header !== undefined && header !== '') return header;
  const protocols = (firstHeader(request.headers['sec-websocket-protocol']) ?? '').split(',').map((item) => item.trim());
  const index = protocols.findIndex((item) => item.toLowerCase() === 'bearer');
  if (index !== -1 && protocols[index + 1] !== undefined && protocols[index + 1] !== '') return `Bearer ${protocols[index + 1]}`;
  return undefined;
}

/** The tenant of a handshake: x-tenant-id, or the `tenant_id` query parameter (browsers). */
export function handshakeTenant(request: http.IncomingMessage, target: SubscribeTarget): string | undefined {
  return firstHeader(request.headers['x-tenant-id']) ?? target.tenantFromQuery;
}

/**
 * The origins a browser may open a subscription from (CONTRACT §2): CORS_ORIGINS and the
 * origin of PUBLIC_URL, compared as URL origins (scheme, host, port; case-insensitive host).
 */
export function allowedOrigins(corsOrigins: readonly string[], publicUrl: string): ReadonlySet<string> {
  const origins = new Set<string>();
  for (const value of [...corsOrigins, publicUrl]) {
    const origin = normalizeOrigin(value);
    if (origin !== undefined) origins.add(origin);
  }
  return origins;
}

function normalizeOrigin(value: string): string | undefined {
  try {
    const origin = new URL(value).origin;
    return origin === 'null' ? undefined : origin;
  } catch {
    return undefined;
  }
}

/**
 * Cross-site WebSocket hijacking guard: a browser always sends Origin, so a handshake with one
 * outside the allowed set is refused; without Origin (non-browser clients) it is allowed.
 */
export function originAllowed(request: http.IncomingMessage, allowed: ReadonlySet<string>): boolean {
  const origin = firstHeader(request.headers.origin);
  if (origin === undefined) return true;
  const normalized = normalizeOrigin(origin);
  return normalized !== undefined && allowed.has(normalized);
}

/** TRUST_PROXY as Fastify applies it to HTTP requests, so both transports agree on the client IP. */
export function clientIpResolver(trustProxy: boolean | string[]): (request: http.IncomingMessage) => string {
  if (trustProxy === false) return (request) => request.socket.remoteAddress ?? '';
  const trust = trustProxy === true ? () => true : proxyAddr.compile(trustProxy);
  return (request) => proxyAddr(request, trust);
}

/** Refuses a handshake with a problem+json HTTP response, before any 101. */
export function refuseHandshake(socket: Duplex, error: AppError, context: RequestContext): number {
  const status = httpStatusOf(error.code);
  const body = JSON.stringify(problemOf(error.code, context.requestId, error.options.detail, error.options.errors));
  const headers: Record<string, string> = {
    'content-type': PROBLEM_CONTENT_TYPE,
    'content-length': String(Buffer.byteLength(body)),
    connection: 'close',
    'x-request-id': context.requestId,
    'x-correlation-id': context.correlationId,
    ...error.options.headers,
  };
  if (status === 401) headers['www-authenticate'] = error.code === 'invalid_token' ? 'Bearer error="invalid_token"' : 'Bearer';
  writeRawResponse(socket, status, headers, body);
  return status;
}

/** Relays an upstream's non-101 answer to the handshake as it is (status and body). */
export function writeRawResponse(socket: Duplex, status: number, headers: Record<string, string>, body: string | Buffer): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const head = [
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}`,
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  socket.write(`${head.join('\r\n')}\r\n\r\n`, 'latin1');
  socket.end(typeof body === 'string' ? Buffer.from(body, 'utf8') : body);
}
