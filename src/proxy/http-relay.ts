import { PassThrough } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { UpstreamHttpResponse } from './http-upstream.client';
import { relayableResponseHeaders } from './upstream-headers';

export function queryStringOf(url: string): string {
  const index = url.indexOf('?');
  return index === -1 ? '' : url.slice(index);
}

/**
 * Sends the upstream's status, end-to-end headers and body to the client: a short body (already
 * read whole) at once, a long one streamed.
 */
export function relayUpstreamResponse(request: FastifyRequest, reply: FastifyReply, response: UpstreamHttpResponse, started: number): void {
  request.ctx.upstream = `${response.upstream} ${response.statusCode} in ${(performance.now() - started).toFixed(1)} ms${
    response.attempts > 1 ? ` after ${response.attempts} attempts` : ''
  }`;
  void reply.status(response.statusCode).headers(relayableResponseHeaders(response.headers));
  const { body } = response;
  if (Buffer.isBuffer(body)) {
    void (request.method === 'HEAD' ? reply.send() : reply.send(body));
    return;
  }
  if (request.method === 'HEAD') {
    body.resume();
    void reply.send();
    return;
  }
  // Long bodies stream through a PassThrough, so the upstream body is released whichever side
  // ends first; a body failing mid-stream breaks the response (headers are already out).
  const relay = new PassThrough();
  body.on('error', (error) => relay.destroy(error));
  relay.on('close', () => {
    if (!body.destroyed) body.destroy();
  });
  body.pipe(relay);
  void reply.send(relay);
}
