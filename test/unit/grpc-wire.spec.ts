import { status } from '@grpc/grpc-js';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  GrpcFramingError,
  decodeGrpcMessage,
  encodeGrpcMessage,
  grpcFrame,
  grpcTimeout,
  inflateMessage,
  parseGrpcTimeout,
  readUnaryMessage,
  statusOfHttp,
} from '../../src/proxy/grpc-wire';

describe('gRPC wire helpers', () => {
  it('frames a message with the 5-byte prefix and reads it back', () => {
    const frame = grpcFrame(Buffer.from('hello'));
    expect([...frame.subarray(0, 5)]).toEqual([0, 0, 0, 0, 5]);
    const { message, compressed } = readUnaryMessage(frame, 100);
    expect(message.toString()).toBe('hello');
    expect(compressed).toBe(false);
    expect(readUnaryMessage(grpcFrame(Buffer.alloc(0)), 100).message.length).toBe(0);
  });

  it('refuses a truncated body, a second message and a message above the limit', () => {
    const frame = grpcFrame(Buffer.from('hello'));
    expect(() => readUnaryMessage(frame.subarray(0, 7), 100)).toThrow(GrpcFramingError);
    expect(() => readUnaryMessage(Buffer.concat([frame, frame]), 100)).toThrow(/exactly one/);
    expect(() => readUnaryMessage(frame.subarray(0, 3), 100)).toThrow(/no complete/);
    try {
      readUnaryMessage(frame, 4);
      expect.unreachable();
    } catch (error) {
      expect((error as GrpcFramingError).code).toBe(status.RESOURCE_EXHAUSTED);
    }
  });

  it('writes grpc-timeout in at most 8 digits and parses every unit', () => {
    expect(grpcTimeout(1500)).toBe('1500m');
    expect(grpcTimeout(0.2)).toBe('1m');
    expect(grpcTimeout(100_000_000)).toBe('100000S');
    expect(parseGrpcTimeout('1500m')).toBe(1500);
    expect(parseGrpcTimeout('2S')).toBe(2000);
    expect(parseGrpcTimeout('1M')).toBe(60_000);
    expect(parseGrpcTimeout('1H')).toBe(3_600_000);
    expect(parseGrpcTimeout('5000u')).toBe(5);
    expect(parseGrpcTimeout('123456789m')).toBeUndefined();
    expect(parseGrpcTimeout('10x')).toBeUndefined();
    expect(parseGrpcTimeout(undefined)).toBeUndefined();
  });

  it('percent-encodes status messages and decodes them back', () => {
    expect(encodeGrpcMessage('plain text')).toBe('plain text');
    const encoded = encodeGrpcMessage('100% sûr\nnext');
    expect(encoded).toBe('100%25 s%C3%BBr%0Anext');
    expect(decodeGrpcMessage(encoded)).toBe('100% sûr\nnext');
    expect(decodeGrpcMessage('bad %zz')).toBe('bad %zz');
    expect(decodeGrpcMessage(undefined)).toBe('');
  });

  it('maps HTTP statuses without grpc-status as the gRPC spec does', () => {
    expect(statusOfHttp(404)).toBe(status.UNIMPLEMENTED);
    expect(statusOfHttp(503)).toBe(status.UNAVAILABLE);
    expect(statusOfHttp(401)).toBe(status.UNAUTHENTICATED);
    expect(statusOfHttp(500)).toBe(status.UNKNOWN);
  });
  it('a compressed message too big once inflated is RESOURCE_EXHAUSTED, as one too big on the wire', () => {
    const big = Buffer.alloc(4096 + 1, 'a');
    for (const [encoding, deflate] of [
      ['gzip', zlib.gzipSync],
      ['deflate', zlib.deflateSync],
    ] as const) {
      expect(inflateMessage(deflate(Buffer.from('small')), encoding, 4096).toString()).toBe('small');
      let refused: unknown;
      try {
        inflateMessage(deflate(big), encoding, 4096);
      } catch (error) {
        refused = error;
      }
      expect(refused, encoding).toBeInstanceOf(GrpcFramingError);
      expect((refused as GrpcFramingError).code, encoding).toBe(status.RESOURCE_EXHAUSTED);
    }
  });
});
