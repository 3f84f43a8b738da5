import { AsyncResource } from 'node:async_hooks';
import http2 from 'node:http2';
import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { status } from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { AppError } from '../common/app-error';
import type { RequestContext } from '../common/request-context';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { MetricsService, counterSeries } from '../observability/metrics.service';
import { RoutingService } from '../routing/routing.service';
import type { ResolvedShard } from '../routing/routing-table';
import type { Principal } from '../session/principal';
import {
  COMMAND_LOADER_OPTIONS,
  COMMAND_PACKAGE,
  COMMAND_PROTO_PATH,
  type SubmitCommandRequest,
  type SubmitCommandResponse,
} from './command-proto';
import { EndpointBreakers, type EndpointBreaker } from './endpoint-breakers.service';
import { InternalTokenService } from './internal-token.service';
import {
  GRPC_CONTENT_TYPE,
  GRPC_PREFIX_BYTES,
  GrpcFramingError,
  decodeGrpcMessage,
  grpcFrame,
  grpcTimeout,
  inflateMessage,
  readUnaryMessage,
  statusOfHttp,
} from './grpc-wire';
import { grpcDeadlines, type Expiring } from './grpc-deadlines';
import { startClientSpan } from './grpc-tracing';
import { HopFailure, UpstreamGrpcError, classifyHopError } from './upstream-failure';
import { appendIdentity } from './upstream-headers';
import { UpstreamTls } from './upstream-tls';

/** Attempts per command on UNAVAILABLE (the first one included), all within the deadline. */
const MAX_ATTEMPTS = 4;
const BACKOFF_BASE_MS = 50;
const BACKOFF_MAX_MS = 500;
export const SUBMIT_COMMAND_PATH = '/aggregate.gateway.v1.CommandService/SubmitCommand';
/** the largest response message accepted from an aggregate (grpc-js's default receive limit) */
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;
/** an idle-looking connection is pinged this often, and dropped when the ping is not answered in time */
const KEEPALIVE_INTERVAL_MS = 30_000;
const KEEPALIVE_TIMEOUT_MS = 10_000;
const USER_AGENT = 'gatehouse-grpc';
/** first-attempt log labels kept (one per endpoint in the routing table) */
const MAX_LABELS = 1024;
/** where the attempt's grpc-timeout value sits in the call's raw header list */
const GRPC_TIMEOUT_VALUE = 11;

/** What `forward` sends: the encoded request (and the client's frame of it, when it can go as it is). */
type ForwardInput = Omit<SubmitInput, 'request'> & { request: Buffer; frame?: Buffer };

export interface SubmitInput {
  request: SubmitCommandRequest;
  principal: Principal;
  tenantId: string;
  context: RequestContext;
  /** the client's deadline (epoch ms), when it gave one */
  deadline?: number;
}

interface CommandCodec {
  encode(request: SubmitCommandRequest): Buffer;
  decode(bytes: Buffer): SubmitCommandResponse;
}

let codecCache: CommandCodec | undefined;

/** SubmitCommand's protobuf (de)serializers, as proto-loader builds them for grpc-js (the same field mapping). */
function commandCodec(): CommandCodec {
  if (codecCache === undefined) {
    const definition = protoLoader.loadSync(COMMAND_PROTO_PATH, COMMAND_LOADER_OPTIONS);
    const method = (definition[`${COMMAND_PACKAGE}.CommandService`] as protoLoader.ServiceDefinition).SubmitCommand!;
    codecCache = {
      encode: (request) => method.requestSerialize(request),
      decode: (bytes) => method.responseDeserialize(bytes) as SubmitCommandResponse,
    };
  }
  return codecCache;
}

/**
 * gRPC to aggregate endpoints on node:http2: one HTTP/2 session per endpoint, reused by every
 * call (mTLS with the UpstreamTls material when configured). A unary call is one stream: the
 * framed message, `grpc-timeout` and the §7 identity headers out; the status from the trailers
 * (or a trailers-only answer) back. grpc-js did the same with several layers of call objects,
 * interceptors, filters and timers per call, which cost more CPU than all of Gatehouse's own work.
 *
 * UNAVAILABLE is retried with the same request (so the same command_id, which makes it safe)
 * on the shard's next endpoint, with backoff, until MAX_ATTEMPTS or the overall deadline:
 * the client's deadline, else UPSTREAM_TIMEOUT_MS. Each attempt carries the deadline upstream.
 */
@Injectable()
export class GrpcUpstreamClient implements OnApplicationShutdown {
  private readonly sessions = new Map<string, http2.ClientHttp2Session>();
  private readonly firstAttemptLabels = new Map<string, { shardId: string; label: string }>();
  /** the attempt counter's `ok` series, found once (prom-client hashes the labels on every inc) */
  private readonly answered: { inc(): void };

  constructor(
    private readonly routing: RoutingService,
    private readonly breakers: EndpointBreakers,
    private readonly tokens: InternalTokenService,
    private readonly metrics: MetricsService,
    private readonly tls: UpstreamTls,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    this.answered = counterSeries(metrics.upstreamRequests, { service_kind: 'aggregate', outcome: 'ok' });
    // a rotated certificate: new calls open new connections with it, calls in flight finish
    tls.onChange(() => {
      for (const endpoint of [...this.sessions.keys()]) this.drop(endpoint);
    });
    routing.onChange((snapshot) => {
      if (snapshot.kind !== 'aggregate') return;
      const live = new Set(Object.values(snapshot.table.shards).flat());
      for (const endpoint of [...this.sessions.keys()]) if (!live.has(endpoint)) this.drop(endpoint);
    });
  }

  onApplicationShutdown(): void {
    for (const endpoint of [...this.sessions.keys()]) this.drop(endpoint);
  }

  /** The HTTP wrapper's call: a decoded request, a decoded response. */
  async submit(input: SubmitInput): Promise<SubmitCommandResponse> {
    const codec = commandCodec();
    const frame = await this.forward({ ...input, request: codec.encode(input.request) });
    return codec.decode(frame.subarray(GRPC_PREFIX_BYTES));
  }

  /**
   * The gRPC pass-through: the client's encoded request goes upstream as the same bytes and the
   * aggregate's encoded response comes back as its bytes (no protobuf decode or re-encode);
   * `frame`, when given, is the request already framed (the client's body) and is sent as it is.
   * The answer is the response message framed (uncompressed): the aggregate's own body when it
   * sent it uncompressed, which the gRPC server relays as it is.
   */
  forward(input: ForwardInput): Promise<Buffer> {
    let shard: ResolvedShard;
    let internalToken: string | undefined;
    try {
      shard = this.routing.resolve('aggregate', input.tenantId);
      internalToken = this.tokens.mintNow('aggregate', input.principal, input.tenantId);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    if (internalToken !== undefined) {
      const token = internalToken;
      return new Promise((resolve, reject) => this.attempts(input, shard, token, resolve, reject));
    }
    return this.tokens
      .mint('aggregate', input.principal, input.tenantId)
      .then((minted) => new Promise((resolve, reject) => this.attempts(input, shard, minted, resolve, reject)));
  }

  /**
   * The call's attempts, the first one at once: the answer goes to `resolve`, the failure that
   * ends the call to `reject`. Written with callbacks rather than as an `async` loop awaiting a
   * promise per attempt: one promise per call (forward's) instead of three, and no suspended
   * frame to resume (profiled on the gRPC path; the retry rules are the same).
   */
  private attempts(
    input: ForwardInput,
    shard: ResolvedShard,
    internalToken: string,
    resolve: (response: Buffer) => void,
    reject: (error: unknown) => void,
  ): void {
    // one raw header list per call (node:http2 takes it without building a header object), its
    // grpc-timeout set per attempt; :scheme and :authority are the session's, added by request()
    const headers = [
      ':method',
      'POST',
      ':path',
      SUBMIT_COMMAND_PATH,
      'content-type',
      GRPC_CONTENT_TYPE,
      'te',
      'trailers',
      'user-agent',
      USER_AGENT,
      'grpc-timeout',
      '',
    ];
    appendIdentity(headers, { principal: input.principal, tenantId: input.tenantId, internalToken, context: input.context });
    const frame = input.frame ?? grpcFrame(input.request);
    const deadline = input.deadline ?? Date.now() + this.config.UPSTREAM_TIMEOUT_MS;
    const attempt = (number: number): void => {
      let endpoint: string;
      try {
        endpoint = this.breakers.plan(shard)[0]!;
      } catch (error) {
        reject(error);
        return;
      }
      const ownTimeout = Date.now() + this.config.UPSTREAM_TIMEOUT_MS;
      const attemptDeadline = Math.min(deadline, ownTimeout);
      // the client's deadline, not Gatehouse's upstream timeout, bounds this attempt
      const clientBound = input.deadline !== undefined && input.deadline < ownTimeout;
      input.context.upstream =
        number === 1 ? this.firstAttemptLabel(shard.shardId, endpoint) : `aggregate ${shard.shardId} ${endpoint} attempt ${number}`;
      const failed = (error: unknown): void => {
        if (error instanceof UpstreamGrpcError) {
          this.metrics.upstreamRequests.inc({ service_kind: 'aggregate', outcome: 'error_reply' });
          reject(error);
          return;
        }
        if (error instanceof AppError) {
          if (error.code === 'circuit_open') this.metrics.upstreamRequests.inc({ service_kind: 'aggregate', outcome: 'circuit_open' });
          reject(error);
          return;
        }
        if (!(error instanceof HopFailure)) {
          reject(error);
          return;
        }
        this.metrics.upstreamRequests.inc({ service_kind: 'aggregate', outcome: error.kind });
        input.context.upstream = `aggregate ${shard.shardId} ${endpoint} attempt ${number} failed: ${error.reason}`;
        const backoff = Math.min(BACKOFF_BASE_MS * 2 ** (number - 1), BACKOFF_MAX_MS) * (0.5 + Math.random() / 2);
        if (error.kind !== 'unavailable' || number >= MAX_ATTEMPTS || Date.now() + backoff >= deadline) {
          reject(error.toAppError());
          return;
        }
        setTimeout(() => attempt(number + 1), backoff);
      };
      // the breaker's two halves written out (as on HTTP): no wrapper promise or closure per attempt
      let breaker: EndpointBreaker;
      try {
        breaker = this.breakers.enter('aggregate', endpoint);
      } catch (error) {
        failed(error);
        return;
      }
      let ended = false;
      // Bound to this call's async context: node:http2 may fire a stream's `close` in another
      // request's context (every stream of a session that was refused or went away closes in the
      // context that opened the session), and what `end` starts — the retry's timer, hence its
      // client span, traceparent and baggage, and the breaker's log lines — must be this call's.
      const end = AsyncResource.bind((error: unknown, response?: Buffer): void => {
        if (ended) return;
        ended = true;
        try {
          if (clientBound && error instanceof HopFailure && error.kind === 'timeout') this.breakers.release(breaker);
          else this.breakers.settle(breaker, error);
          if (error !== undefined) {
            failed(error);
            return;
          }
          this.answered.inc();
          resolve(response!);
        } catch (thrown) {
          // never a call left without an answer (nor a throw out of a stream's event handler)
          reject(thrown);
        }
      });
      try {
        this.call(endpoint, headers, frame, attemptDeadline, end);
      } catch (error) {
        // what a promise around the attempt would have made of it: the attempt's failure
        if (ended) reject(error);
        else end(error);
      }
    };
    attempt(1);
  }

  /** The log line's `upstream` of a first attempt, built once per shard and endpoint (nearly every call's). */
  private firstAttemptLabel(shardId: string, endpoint: string): string {
    const known = this.firstAttemptLabels.get(endpoint);
    if (known !== undefined && known.shardId === shardId) return known.label;
    const label = `aggregate ${shardId} ${endpoint} attempt 1`;
    if (this.firstAttemptLabels.size >= MAX_LABELS) this.firstAttemptLabels.clear();
    this.firstAttemptLabels.set(endpoint, { shardId, label });
    return label;
  }

  /**
   * One attempt: one stream on the endpoint's session; `done` gets the framed response message,
   * or the failure it ended in (once; synchronously when the stream could not be opened).
   */
  private call(
    endpoint: string,
    headers: string[],
    frame: Buffer,
    deadline: number,
    done: (error: Error | undefined, response?: Buffer) => void,
  ): void {
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      done(new HopFailure('timeout', 'sent', 'grpc DEADLINE_EXCEEDED before the call started'));
      return;
    }
    headers[GRPC_TIMEOUT_VALUE] = grpcTimeout(remaining);
    const endSpan = startClientSpan(endpoint, headers);
    const fail = (error: Error): void => {
      endSpan(statusOfFailure(error), error.message);
      done(error);
    };
    let stream: http2.ClientHttp2Stream;
    try {
      stream = this.session(endpoint).request(headers);
    } catch (error) {
      fail(classifyHopError(error));
      return;
    }
    let settled = false;
    let responseHeaders: http2.IncomingHttpHeaders | undefined;
    let trailers: http2.IncomingHttpHeaders | undefined;
    let failure: unknown;
    const chunks: Buffer[] = [];
    let received = 0;
    const watched: Expiring = {
      deadline,
      watchSlot: -1,
      expire: () => {
        if (settled) return;
        settled = true;
        stream.close(http2.constants.NGHTTP2_CANCEL);
        fail(new HopFailure('timeout', 'sent', `grpc DEADLINE_EXCEEDED after ${remaining} ms`));
      },
    };
    grpcDeadlines.add(watched);
    stream.on('response', (received) => (responseHeaders = received));
    stream.on('trailers', (received) => (trailers = received));
    stream.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received <= MAX_RESPONSE_BYTES + 5) chunks.push(chunk);
      else if (failure === undefined) {
        failure = new UpstreamGrpcError(status.RESOURCE_EXHAUSTED, `response larger than ${MAX_RESPONSE_BYTES} bytes`);
        stream.close(http2.constants.NGHTTP2_CANCEL);
      }
    });
    stream.on('error', (error) => (failure ??= error));
    stream.on('close', () => {
      grpcDeadlines.delete(watched);
      if (settled) return;
      settled = true;
      let response: Buffer;
      try {
        response = this.outcome(stream, responseHeaders, trailers, failure, chunks);
      } catch (error) {
        fail(error as Error);
        return;
      }
      endSpan(status.OK);
      done(undefined, response);
    });
    stream.end(frame);
  }

  /** What a finished stream answered: the framed response message, or the error to raise. */
  private outcome(
    stream: http2.ClientHttp2Stream,
    responseHeaders: http2.IncomingHttpHeaders | undefined,
    trailers: http2.IncomingHttpHeaders | undefined,
    failure: unknown,
    chunks: Buffer[],
  ): Buffer {
    if (failure instanceof UpstreamGrpcError) throw failure;
    const statusHeader = trailers?.['grpc-status'] ?? responseHeaders?.['grpc-status'];
    if (statusHeader === undefined) {
      if (failure !== undefined) throw classifyHopError(failure);
      if (responseHeaders === undefined || stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) {
        throw new HopFailure('unavailable', 'sent', `grpc stream closed without a status (RST_STREAM ${stream.rstCode})`);
      }
      const httpStatus = Number(responseHeaders[':status']);
      const code = httpStatus === 200 ? status.UNKNOWN : statusOfHttp(httpStatus);
      throw this.failureOf(code, `no grpc-status in the answer (HTTP ${httpStatus})`);
    }
    const code = Number(statusHeader);
    if (code !== status.OK) throw this.failureOf(code, decodeGrpcMessage((trailers ?? responseHeaders)?.['grpc-message']));
    try {
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      const { message, compressed } = readUnaryMessage(body, MAX_RESPONSE_BYTES);
      if (compressed) return grpcFrame(inflateMessage(message, responseHeaders?.['grpc-encoding'], MAX_RESPONSE_BYTES));
      // one well-formed uncompressed message: the body is already its frame
      return body[0] === 0 ? body : grpcFrame(message);
    } catch (error) {
      if (error instanceof GrpcFramingError) {
        throw new UpstreamGrpcError(error.code === status.RESOURCE_EXHAUSTED ? error.code : status.INTERNAL, error.message);
      }
      throw new UpstreamGrpcError(status.INTERNAL, `undecodable response: ${(error as Error).message}`);
    }
  }

  /** The upstream's non-OK status as today's mapping: UNAVAILABLE and CANCELLED retry, a deadline is a timeout, the rest is relayed. */
  private failureOf(code: number, details: string): Error {
    switch (code) {
      case status.UNAVAILABLE:
      case status.CANCELLED:
        return new HopFailure('unavailable', 'sent', `grpc ${status[code]}: ${details}`);
      case status.DEADLINE_EXCEEDED:
        return new HopFailure('timeout', 'sent', `grpc DEADLINE_EXCEEDED: ${details}`);
      default:
        return new UpstreamGrpcError(code, details);
    }
  }

  private session(endpoint: string): http2.ClientHttp2Session {
    const open = this.sessions.get(endpoint);
    if (open !== undefined && !open.closed && !open.destroyed) return open;
    const material = this.tls.material();
    const session =
      material === undefined
        ? http2.connect(`http://${endpoint}`)
        : http2.connect(`https://${endpoint}`, { secureContext: material.secureContext });
    // errors reach the streams in flight; the session is only forgotten, so the next call reconnects
    session.on('error', () => this.forget(endpoint, session));
    session.on('goaway', () => this.forget(endpoint, session));
    session.on('close', () => this.forget(endpoint, session));
    const keepalive = setInterval(() => {
      const timeout = setTimeout(() => session.destroy(new Error('keepalive ping not answered')), KEEPALIVE_TIMEOUT_MS);
      timeout.unref();
      const sent = session.ping((error) => {
        clearTimeout(timeout);
        if (error !== null && !session.destroyed) session.destroy(error);
      });
      if (!sent) clearTimeout(timeout);
    }, KEEPALIVE_INTERVAL_MS);
    keepalive.unref();
    session.once('close', () => clearInterval(keepalive));
    session.unref();
    this.sessions.set(endpoint, session);
    return session;
  }

  private forget(endpoint: string, session: http2.ClientHttp2Session): void {
    if (this.sessions.get(endpoint) === session) this.sessions.delete(endpoint);
  }

  /** Closes the endpoint's session once its calls in flight are done; the next call opens a new one. */
  private drop(endpoint: string): void {
    const session = this.sessions.get(endpoint);
    if (session === undefined) return;
    this.sessions.delete(endpoint);
    if (!session.closed) session.close();
  }
}

/** The gRPC status a failed attempt stands for (its span's status code). */
function statusOfFailure(error: Error): number {
  if (error instanceof UpstreamGrpcError) return error.grpcCode;
  if (error instanceof HopFailure) return error.kind === 'timeout' ? status.DEADLINE_EXCEEDED : status.UNAVAILABLE;
  return status.UNKNOWN;
}
