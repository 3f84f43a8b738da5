import type { IncomingMessage } from 'node:http';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { errorCodes, type FastifyRequest } from 'fastify';
import { StreamedBody } from './streamed-body';

/** Routes whose body goes upstream untouched and unread: streamed as it arrives, never parsed. */
const PASSTHROUGH_ROUTES = ['/v1/query/', '/admin/runner/'];

type Done = (error: Error | null, body?: unknown) => void;

/**
 * Replaces the JSON body parser with one that streams the body of proxied routes (a
 * StreamedBody the controller hands to the upstream call; its limit is applied as the bytes
 * pass) and reads and parses the body everywhere else as Fastify does: the route's body limit,
 * the declared length checked, the default JSON parser with its poisoning protections.
 * Must run before the app initialises its routes.
 */
export function installProxyBodyParser(app: NestFastifyApplication, bodyLimit: number): void {
  const fastify = app.getHttpAdapter().getInstance();
  const { onProtoPoisoning, onConstructorPoisoning } = fastify.initialConfig as {
    onProtoPoisoning?: 'error' | 'remove' | 'ignore';
    onConstructorPoisoning?: 'error' | 'remove' | 'ignore';
  };
  const parseJson = fastify.getDefaultJsonParser(onProtoPoisoning ?? 'error', onConstructorPoisoning ?? 'error');
  // registered through Nest first, so its adapter does not add its own JSON parser at init,
  // then replaced by one that receives the body as a stream
  app.useBodyParser('application/json', { bodyLimit }, (_request: FastifyRequest, body: Buffer, done: Done) => done(null, body));
  fastify.removeContentTypeParser('application/json');
  fastify.addContentTypeParser('application/json', (request: FastifyRequest, payload: IncomingMessage, done: Done) => {
    const limit = request.routeBodyLimit || bodyLimit;
    const declared = request.headers['content-length'] === undefined ? undefined : Number(request.headers['content-length']);
    if (declared !== undefined && declared > limit) {
      done(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE());
      return;
    }
    const route = request.routeUrl ?? '';
    if (PASSTHROUGH_ROUTES.some((prefix) => route.startsWith(prefix))) {
      done(null, new StreamedBody(payload, declared, limit));
      return;
    }
    readWhole(payload, declared, limit, (error, body) => {
      if (error !== null) {
        done(error);
        return;
      }
      // typed as possibly async; Fastify's default JSON parser completes through `done`
      void parseJson(request, body!.toString('utf8'), done);
    });
  });
}

/** Fastify's own raw-body reading (limit, declared length), for the routes that parse their body. */
function readWhole(
  payload: IncomingMessage,
  declared: number | undefined,
  limit: number,
  done: (error: Error | null, body?: Buffer) => void,
) {
  const chunks: Buffer[] = [];
  let received = 0;
  const finish = (error: Error | null, body?: Buffer) => {
    payload.removeListener('data', onData);
    payload.removeListener('end', onEnd);
    payload.removeListener('error', onError);
    done(error, body);
  };
  const onData = (chunk: Buffer) => {
    received += chunk.length;
    if (received > limit) {
      finish(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE());
      return;
    }
    chunks.push(chunk);
  };
  const onEnd = () => {
    if (declared !== undefined && !Number.isNaN(declared) && received !== declared) {
      finish(new errorCodes.FST_ERR_CTP_INVALID_CONTENT_LENGTH());
      return;
    }
    finish(null, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, received));
  };
  const onError = (error: Error & { statusCode?: number }) => {
    if (!(typeof error.statusCode === 'number' && error.statusCode >= 400)) error.statusCode = 400;
    finish(error);
  };
  payload.on('data', onData);
  payload.on('end', onEnd);
  payload.on('error', onError);
  payload.resume();
}
