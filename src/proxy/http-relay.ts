import { PassThrough } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { UpstreamHttpResponse } from './http-upstream.client';
import { classifyHopError } from './upstream-failure';
import { relayableResponseHeaders } from './upstream-headers';

export function queryStringOf(url: string): string {
  const index = url.indexOf('?');
  return index === -1 ? '' : url.slice(index);
}

/** Sends the upstream's status, end-to-end headers and streamed body to the client. */
/** Bodies announced at most this long are read whole and sent in one write; longer or unknown ones stream. */
const BUFFERED_BODY_LIMIT = 64 * 1024;

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
  if (request.method === 'HEAD') {
    response.body.resume();
    void reply.send();
    return;
  }
  const length = Number(response.headers['content-length'] ?? Number.NaN);
  if (length <= BUFFERED_BODY_LIMIT) {
    let body: Buffer;
    try {
      const bytes = await response.body.bytes();
      body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (error) {
      throw classifyHopError(error).toAppError();
    }
    void reply.send(body);
    return;
  }
  // Long bodies stream through a PassThrough, so the upstream body is released whichever side
  // ends first; a body failing mid-stream breaks the response (headers are already out).
  const relay = new PassThrough();
  response.body.on('error', (error) => relay.destroy(error));
  relay.on('close', () => {
    if (!response.body.destroyed) response.body.destroy();
  });
  response.body.pipe(relay);
  void reply.send(relay);
}
