import { randomFillSync } from 'node:crypto';
import { activeSpanIds } from './active-span';

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const CORRELATION_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

export interface TraceContext {
  traceId: string;
  spanId: string;
  traceFlags: string;
}

/** W3C trace-context: continue a valid inbound traceparent with a new span, else start a new trace. */
export function continueTrace(header: string | string[] | undefined): TraceContext {
  // With tracing on, the instrumentation has already continued the header into a server span:
  // adopt its ids, so logs, the response's traceparent and exported spans agree.
  const active = activeSpanIds();
  if (active !== undefined) return active;
  const value = Array.isArray(header) ? header[0] : header;
  const match = value === undefined ? null : TRACEPARENT.exec(value.trim());
  const spanId = newSpanId();
  if (match !== null) {
    const [, version, traceId, parentId, flags, rest] = match;
    // version ff is forbidden; version 00 allows nothing after the flags
    const versionOk = version !== 'ff' && (version !== '00' || rest === undefined);
    if (versionOk && traceId !== ZERO_TRACE && parentId !== ZERO_SPAN) {
      return { traceId: traceId!, spanId, traceFlags: flags! };
    }
  }
  return { traceId: randomHex(16), spanId, traceFlags: '01' };
}

export function newSpanId(): string {
  return randomHex(8);
}

/** Ids come from one pooled CSPRNG buffer, refilled when spent, rather than a call per id (as randomUUID does). */
const POOL_BYTES = 8192;
const pool = Buffer.alloc(POOL_BYTES);
let offset = POOL_BYTES;

function randomHex(bytes: number): string {
  if (offset + bytes > POOL_BYTES) {
    randomFillSync(pool);
    offset = 0;
  }
  const hex = pool.toString('hex', offset, offset + bytes);
  offset += bytes;
  return hex;
}

export function formatTraceparent(trace: TraceContext, spanId = trace.spanId): string {
  return `00-${trace.traceId}-${spanId}-${trace.traceFlags}`;
}

export function acceptCorrelationId(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  return value !== undefined && CORRELATION_ID.test(value) ? value : undefined;
}
