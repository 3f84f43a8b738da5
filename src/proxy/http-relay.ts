import { PassThrough } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { UpstreamHttpResponse } from './http-upstream.client';
import { classifyHopError } from './upstream-failure';
import { relayableResponseHeaders } from './upstream-headers';

export function queryStringOf(url: string): string {
  const index = url.indexOf('?');
  return index === -1 ? '' : url.slice(index);
}

/** Sends the upstream's status, end-to-end headers and body (read whole when short, else streamed) to the client. */
export async function relayUpstreamResponse(
  request: FastifyRequest,
  reply: FastifyReply,
  response: UpstreamHttpResponse,
  started: number,
): Promise<void> {
  request.ctx.upstream = `${response.upstream} ${response.statusCode} in ${(performance.now() - started).toFixed(1)} ms${
    response.attempts > 1 ? ` after ${response.attempts} attempts` : ''
  }`;
  void reply.status(response.statusCode).headers(relayableResponseHeaders(response.headers));
  const { body } = response;
  if (body.kind === 'buffered') {
    let whole: Buffer;
    try {
      whole = await body.whole;
    } catch (error) {
      throw classifyHopError(error).toAppError();
    }
    void (request.method === 'HEAD' ? reply.send() : reply.send(whole));
    return;
  }
  const upstream = body.stream;
  if (request.method === 'HEAD') {
    upstream.resume();
    void reply.send();
    return;
  }
  // Long bodies stream through a PassThrough, so the upstream body is released whichever side
  // ends first; a body failing mid-stream breaks the response (headers are already out).
  const relay = new PassThrough();
  upstream.on('error', (error) => relay.destroy(error));
  relay.on('close', () => {
    if (!upstream.destroyed) upstream.destroy();
  });
  upstream.pipe(relay);
  void reply.send(relay);
}
