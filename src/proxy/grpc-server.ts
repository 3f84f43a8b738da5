import http2 from 'node:http2';
import { status, type Metadata } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { headerCount } from '../common/authorization-header';
import { firstHeader } from '../common/header-value';
import type { AppConfig } from '../config/config';
import { httpsServerOptions, refuseUnverifiedClientCertificates, verifiedPeerSubject } from '../observability/client-certificate';
import { GRPC_CONTENT_TYPE, GrpcFramingError, encodeGrpcMessage, inflateMessage, parseGrpcTimeout, readUnaryMessage } from './grpc-wire';
import { grpcDeadlines, type Expiring } from './grpc-deadlines';
import { inServerSpan, type EndSpan } from './grpc-tracing';
import { SUBMIT_COMMAND_PATH } from './grpc-upstream.client';

/** the largest request message accepted (grpc-js's default receive limit, as before) */
const MAX_REQUEST_BYTES = 4 * 1024 * 1024;
const ACCEPTED_ENCODINGS = 'identity,deflate,gzip';
/** HTTP/2 memory a session may hold before nghttp2 refuses new streams (MB); Node's 10 is tight for many concurrent callers */
const MAX_SESSION_MEMORY_MB = 64;
/** At shutdown, connections whose calls are still unanswered this long after GOAWAY are cut (a call without grpc-timeout could hold them for ever). */
const CLOSE_GRACE_MS = 10_000;
/** Who is at the other end of a connection: the same for all its calls (HTTP/2 forbids renegotiation). */
interface Peer {
  /** `address:port`, the log line's `ip` */
  peer: string;
  address: string;
  /** the verified client certificate's subject */
  clientCertSubject: string | undefined;
}
/**
 * Read once per connection, on its first call: `session.socket` is a Proxy whose every read
 * goes through its trap, and the `address:port` string built per call was a new string to
 * hash in the log line's cache of repeated values.
 */
const peers = new WeakMap<http2.Http2Session, Peer>();
/** An answer's headers and its OK trailers, the same for every call (node:http2 copies them). */
const OK_HEADERS: http2.OutgoingHttpHeaders = {
  ':status': 200,
  'content-type': GRPC_CONTENT_TYPE,
  'grpc-accept-encoding': ACCEPTED_ENCODINGS,
  'grpc-encoding': 'identity',
};
const OK_TRAILERS: http2.OutgoingHttpHeaders = { 'grpc-status': '0', 'grpc-message': 'OK' };
/**
 * Whether `respond()` takes a raw header list (Node ≥ 24.7): a fresh list per call (node:http2
 * appends `date` to the list it is given), where a header object is copied into a prototype-less
 * one and its keys walked.
 */
const RESPOND_TAKES_RAW_HEADERS = ((major, minor) => major > 24 || (major === 24 && minor >= 7))(
  ...(process.versions.node.split('.').map(Number) as [number, number]),
);
const WAIT_FOR_TRAILERS = { waitForTrailers: true };

/** A gRPC status answer: the code, its message and metadata for the trailers. */
export interface CallStatus {
  code: status;
  details: string;
  metadata?: Metadata;
}

/** One unary SubmitCommand call as the handler sees it, whatever the transport under it. */
export interface CommandCall {
  /** the encoded SubmitCommandRequest */
  request: Buffer;
  /** the request as the client framed it (prefix and message), when it can go upstream unchanged */
  frame?: Buffer;
  /** the first value of a request metadata entry */
  metadata(name: string): string | undefined;
  /** how many `authorization` entries the client sent */
  authorizationCount: number;
  /** `address:port` of the client, as grpc-js's getPeer() wrote it (the log line's `ip`) */
  peer: string;
  /** the client's address alone (policy input and the per-IP limit) */
  address: string;
  clientCertSubject?: string;
  /** the client's deadline (epoch ms), when it gave one */
  deadline?: number;
}

/** What serves SubmitCommand (CommandGrpcController): answers once, with the framed response message or a status. */
export interface CommandCallHandler {
  submitCommand(call: CommandCall, answer: (error: CallStatus | null, frame?: Buffer) => void): void;
}

/**
 * The gRPC server Gatehouse runs on GRPC_PORT, on node:http2: `aggregate.gateway.v1.CommandService`
 * (its one method, SubmitCommand, the only service the port ever hosted). grpc-js's server, under
 * Nest's microservice transport, cost more CPU per call than Gatehouse's own work and the whole
 * upstream leg; this is the gRPC protocol for unary calls and nothing more: the 5-byte framed
 * message in (identity, gzip or deflate, at most 4 MiB), `grpc-timeout` as the call's deadline,
 * the response message with `grpc-status` in the trailers, or a trailers-only status with its
 * metadata. Any other method is UNIMPLEMENTED, a non-gRPC request 415, as grpc-js answered them.
 * TLS and client certificates as on HTTP (CONTRACT §13); in-flight calls finish at shutdown.
 */
export class CommandGrpcServer {
  private readonly server: http2.Http2Server | http2.Http2SecureServer;
  private readonly sessions = new Set<http2.ServerHttp2Session>();

  constructor(
    private readonly handler: CommandCallHandler,
    config: AppConfig,
    private readonly logger: Logger,
  ) {
    const tls = httpsServerOptions(config);
    const settings = { maxSessionMemory: MAX_SESSION_MEMORY_MB };
    if (tls === undefined) this.server = http2.createServer(settings);
    else {
      const secure = http2.createSecureServer({ ...settings, ...tls, allowHTTP1: false });
      if (tls.requestCert === true && tls.rejectUnauthorized === false) refuseUnverifiedClientCertificates(secure);
      this.server = secure;
    }
    this.server.on('session', (session: http2.ServerHttp2Session) => {
      this.sessions.add(session);
      session.on('close', () => this.sessions.delete(session));
      session.on('error', () => undefined);
    });
    this.server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders: string[]) =>
      this.onStream(stream, headers, rawHeaders),
    );
  }

  listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '0.0.0.0', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  /** Stops accepting; every connection gets GOAWAY and closes once its calls in flight are answered (at most CLOSE_GRACE_MS). */
  close(): Promise<void> {
    return new Promise((resolve) => {
      const cut = setTimeout(() => {
        for (const session of this.sessions) session.destroy();
      }, CLOSE_GRACE_MS);
      cut.unref();
      this.server.close(() => {
        clearTimeout(cut);
        resolve();
      });
      for (const session of this.sessions) session.close();
    });
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, rawHeaders: string[]): void {
    // a client's reset or a broken connection: the call's answer is dropped (answered() below)
    stream.on('error', ignore);
    const contentType = headers['content-type'];
    if (headers[':method'] !== 'POST' || contentType === undefined || !contentType.startsWith(GRPC_CONTENT_TYPE)) {
      stream.respond({ ':status': 415 }, { endStream: true });
      return;
    }
    if (headers[':path'] !== SUBMIT_COMMAND_PATH) {
      answerStatus(stream, { code: status.UNIMPLEMENTED, details: `The server does not implement the method ${headers[':path']}` });
      return;
    }
    const timeout = parseGrpcTimeout(headers['grpc-timeout'] as string | undefined);
    const deadline = timeout === undefined ? undefined : Date.now() + timeout;
    let watched: Expiring | undefined;
    let answered = false;
    let endSpan: EndSpan | undefined;
    const answer = (error: CallStatus | null, frame?: Buffer): void => {
      if (answered) return;
      answered = true;
      if (watched !== undefined) grpcDeadlines.delete(watched);
      endSpan?.(error === null ? status.OK : error.code, error?.details);
      if (stream.closed || stream.destroyed) return;
      if (error === null) answerMessage(stream, frame!);
      else answerStatus(stream, error);
    };
    if (deadline !== undefined) {
      watched = { deadline, watchSlot: -1, expire: () => answer({ code: status.DEADLINE_EXCEEDED, details: 'Deadline exceeded' }) };
      grpcDeadlines.add(watched);
    }
    stream.on('close', () => {
      if (watched !== undefined) grpcDeadlines.delete(watched);
      if (!answered) endSpan?.(status.CANCELLED, 'cancelled by the client');
      answered = true;
    });
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_REQUEST_BYTES + 5) chunks.push(chunk);
      else if (!answered) {
        answer({ code: status.RESOURCE_EXHAUSTED, details: `Received message larger than max (${size - 5} vs. ${MAX_REQUEST_BYTES})` });
      }
    });
    stream.on('end', () => {
      if (answered) return;
      let request: Buffer;
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      try {
        request = this.requestMessage(body, headers['grpc-encoding']);
      } catch (error) {
        const framing = error instanceof GrpcFramingError ? error : new GrpcFramingError(status.INTERNAL, (error as Error).message);
        answer({ code: framing.code, details: framing.message });
        return;
      }
      const { peer, address, clientCertSubject } = peerOf(stream.session);
      const call: CommandCall = {
        request,
        // an uncompressed message is the body after its prefix: the body goes upstream as it is
        frame: request.buffer === body.buffer && request.byteOffset === body.byteOffset + 5 ? body : undefined,
        metadata: (name) => firstHeader(headers[name]),
        authorizationCount: headerCount(rawHeaders, 'authorization'),
        peer,
        address,
        clientCertSubject,
        deadline,
      };
      inServerSpan(headers, (end) => {
        endSpan = end;
        try {
          this.handler.submitCommand(call, answer);
        } catch (error) {
          this.logger.error({ err: error }, 'unhandled error in a gRPC call');
          answer({ code: status.INTERNAL, details: 'Internal error' });
        }
      });
    });
  }

  /** The request message, decompressed when the client compressed it with an encoding it declared. */
  private requestMessage(body: Buffer, encoding: string | string[] | undefined): Buffer {
    const { message, compressed } = readUnaryMessage(body, MAX_REQUEST_BYTES);
    return compressed ? inflateMessage(message, encoding, MAX_REQUEST_BYTES) : message;
  }
}

/** The response message (framed, uncompressed), then `grpc-status: 0` in the trailers. */
function answerMessage(stream: http2.ServerHttp2Stream, frame: Buffer): void {
  if (RESPOND_TAKES_RAW_HEADERS) {
    stream.respond(
      [':status', '200', 'content-type', GRPC_CONTENT_TYPE, 'grpc-accept-encoding', ACCEPTED_ENCODINGS, 'grpc-encoding', 'identity'],
      WAIT_FOR_TRAILERS,
    );
  } else stream.respond(OK_HEADERS, WAIT_FOR_TRAILERS);
  // emitted once per stream: a shared listener, no closure or once() wrapper per call
  stream.on('wantTrailers', sendOkTrailers);
  stream.end(frame);
}

function sendOkTrailers(this: http2.ServerHttp2Stream): void {
  this.sendTrailers(OK_TRAILERS);
}

/** A trailers-only answer: the status and its metadata in the one header block. */
function answerStatus(stream: http2.ServerHttp2Stream, answer: CallStatus): void {
  const headers: http2.OutgoingHttpHeaders = {
    ...(answer.metadata?.toHttp2Headers() ?? {}),
    ':status': 200,
    'content-type': GRPC_CONTENT_TYPE,
    'grpc-accept-encoding': ACCEPTED_ENCODINGS,
    'grpc-status': String(answer.code),
    'grpc-message': encodeGrpcMessage(answer.details),
  };
  stream.respond(headers, { endStream: true });
}

function ignore(): void {}

const UNKNOWN_PEER: Peer = { peer: 'unknown', address: 'unknown', clientCertSubject: undefined };

/** The call's connection's peer, read on its first call. */
function peerOf(session: http2.Http2Session | undefined): Peer {
  if (session === undefined) return UNKNOWN_PEER;
  let known = peers.get(session);
  if (known === undefined) {
    const socket = session.socket;
    const address = socket?.remoteAddress;
    // a connection already gone has no address: answered as unknown, and not remembered
    if (address === undefined) {
      return { ...UNKNOWN_PEER, clientCertSubject: socket === undefined ? undefined : verifiedPeerSubject(socket) };
    }
    known = { peer: `${address}:${socket.remotePort}`, address, clientCertSubject: verifiedPeerSubject(socket) };
    peers.set(session, known);
  }
  return known;
}
