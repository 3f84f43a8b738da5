import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { problemOf, PROBLEM_CONTENT_TYPE } from '../common/problem-details';

/**
 * Fastify options that bound how long a client may take to send a request (CONTRACT §2
 * `REQUEST_TIMEOUT_MS`): Node's headersTimeout and requestTimeout (headers, then the whole body),
 * checked often enough that the bound holds within a quarter of it (Node checks every 30 s by
 * default), and answered 408 `request_timeout` as problem+json before the connection is closed.
 */
export function requestTimeoutOptions(timeoutMs: number) {
  return { requestTimeout: timeoutMs, http: serverTimeouts(timeoutMs), clientErrorHandler };
}

/**
 * The same bounds for a server created outside Fastify (main.ts's boot listener, which Fastify
 * adopts through `serverFactory`): the checking interval can only be set at creation.
 */
export function serverTimeouts(timeoutMs: number): { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number } {
  const checkEveryMs = Math.max(50, Math.min(1000, Math.floor(timeoutMs / 4)));
  return { headersTimeout: timeoutMs, requestTimeout: timeoutMs, connectionsCheckingInterval: checkEveryMs };
}

function rawResponse(socket: Duplex, status: number, body: string, contentType: string): void {
  const head = [
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}`,
    `content-type: ${contentType}`,
    `content-length: ${Buffer.byteLength(body)}`,
    'connection: close',
  ];
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
}

/** Fastify's clientError handler: the timeout as a problem, other parse errors as Fastify does. */
function clientErrorHandler(error: Error & { code?: string }, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  // a response already begun (a streamed proxy reply) cannot become a 408: just close
  const started = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true;
  if (socket.writable && !started) {
    if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      rawResponse(socket, 408, JSON.stringify(problemOf('request_timeout', randomUUID())), PROBLEM_CONTENT_TYPE);
    } else if (error.code === 'HPE_HEADER_OVERFLOW') {
      rawResponse(socket, 431, '{"error":"Request Header Fields Too Large","statusCode":431}', 'application/json');
    } else {
      rawResponse(
        socket,
        400,
        JSON.stringify(problemOf('validation_failed', randomUUID(), 'The request is not valid HTTP.')),
        PROBLEM_CONTENT_TYPE,
      );
    }
  }
  // whatever was written is flushed first; a client that reads nothing is cut off
  setTimeout(() => socket.destroy(), 1000).unref();
}
