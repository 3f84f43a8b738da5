import zlib from 'node:zlib';
import { status } from '@grpc/grpc-js';

/**
 * gRPC over HTTP/2 as the spec writes it (grpc/grpc doc/PROTOCOL-HTTP2.md), for the legs
 * Gatehouse speaks on node:http2 directly: a message is a 5-byte prefix (compressed flag, 32-bit
 * big-endian length) and its bytes; the deadline travels as `grpc-timeout`; the status comes in
 * the trailers, or in the headers of a trailers-only answer, with a percent-encoded message.
 */
export const GRPC_CONTENT_TYPE = 'application/grpc';
/** a message's prefix: the compressed flag and its 32-bit big-endian length */
export const GRPC_PREFIX_BYTES = 5;
const PREFIX_BYTES = GRPC_PREFIX_BYTES;
const MAX_TIMEOUT_DIGITS = 99_999_999;

/** The message with its 5-byte prefix (uncompressed). */
export function grpcFrame(message: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(PREFIX_BYTES + message.length);
  frame[0] = 0;
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, PREFIX_BYTES);
  return frame;
}

/** Why a unary body is not one well-formed message. */
export class GrpcFramingError extends Error {
  constructor(
    readonly code: status,
    reason: string,
  ) {
    super(reason);
    this.name = 'GrpcFramingError';
  }
}

/**
 * The one message of a unary body (its bytes, without the prefix). `compressed` is what the
 * message's flag may use: a compressed message is refused when the peer declared no encoding.
 */
export function readUnaryMessage(body: Buffer, maxBytes: number): { message: Buffer; compressed: boolean } {
  if (body.length < PREFIX_BYTES) throw new GrpcFramingError(status.INTERNAL, 'the body holds no complete gRPC message');
  const length = body.readUInt32BE(1);
  if (length > maxBytes) {
    throw new GrpcFramingError(status.RESOURCE_EXHAUSTED, `Received message larger than max (${length} vs. ${maxBytes})`);
  }
  if (body.length !== PREFIX_BYTES + length) {
    throw new GrpcFramingError(status.INTERNAL, 'the body is not exactly one gRPC message (unary call)');
  }
  return { message: body.subarray(PREFIX_BYTES), compressed: body[0] === 1 };
}

/**
 * A compressed message's bytes, for the encodings Gatehouse advertises (`grpc-accept-encoding:
 * identity,deflate,gzip`); at most `maxBytes` once inflated.
 */
export function inflateMessage(message: Buffer, encoding: string | string[] | undefined, maxBytes: number): Buffer {
  const inflate = encoding === 'gzip' ? zlib.gunzipSync : encoding === 'deflate' ? zlib.inflateSync : undefined;
  if (inflate === undefined) {
    throw new GrpcFramingError(status.UNIMPLEMENTED, `Received message compressed with unsupported encoding "${String(encoding)}"`);
  }
  try {
    return inflate(message, { maxOutputLength: maxBytes });
  } catch (error) {
    // too big once inflated is the same refusal as too big on the wire (as grpc-js answered it)
    if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new GrpcFramingError(status.RESOURCE_EXHAUSTED, `Received message larger than max (over ${maxBytes} once inflated)`);
    }
    throw error;
  }
}

/** `grpc-timeout` for a deadline this many ms away (at most 8 digits: ms, then seconds, minutes). */
export function grpcTimeout(ms: number): string {
  const value = Math.max(1, Math.ceil(ms));
  if (value <= MAX_TIMEOUT_DIGITS) return `${value}m`;
  if (value / 1000 <= MAX_TIMEOUT_DIGITS) return `${Math.ceil(value / 1000)}S`;
  return `${Math.min(MAX_TIMEOUT_DIGITS, Math.ceil(value / 60_000))}M`;
}

const TIMEOUT_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** A `grpc-timeout` value in ms; undefined when absent or malformed (no deadline then). */
export function parseGrpcTimeout(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (match === null) return undefined;
  return Number(match[1]) * TIMEOUT_UNIT_MS[match[2]!]!;
}

/** A `grpc-message` as sent (percent-encoded UTF-8), made readable again. */
export function decodeGrpcMessage(value: string | string[] | undefined): string {
  if (value === undefined) return '';
  const text = Array.isArray(value) ? value.join(',') : value;
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** A status message for `grpc-message`: printable ASCII except `%` stays, everything else is percent-encoded. */
export function encodeGrpcMessage(message: string): string {
  let plain = true;
  for (let index = 0; index < message.length; index += 1) {
    const code = message.charCodeAt(index);
    if (code < 0x20 || code > 0x7e || code === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return message;
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte < 0x20 || byte > 0x7e || byte === 0x25 ? `%${byte.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(byte);
  }
  return out;
}

/** The gRPC status an HTTP status stands for when an answer carries no `grpc-status` (the spec's table). */
export function statusOfHttp(httpStatus: number): status {
  switch (httpStatus) {
    case 400:
      return status.INTERNAL;
    case 401:
      return status.UNAUTHENTICATED;
    case 403:
      return status.PERMISSION_DENIED;
    case 404:
      return status.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return status.UNAVAILABLE;
    default:
      return status.UNKNOWN;
  }
}
