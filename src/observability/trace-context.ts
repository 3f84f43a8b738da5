import { randomFillSync } from 'node:crypto';
import { firstHeader } from '../common/header-value';
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

/**
 * W3C trace-context: continue a valid inbound traceparent with a new span, else start a new trace.
 * `incoming`: Node's request object of an HTTP request, whose server span (tracing on) is adopted.
 */
export function continueTrace(header: string | string[] | undefined, incoming?: object): TraceContext {
  // With tracing on, the instrumentation has already continued the header into a server span:
  // adopt its ids, so logs, the response's traceparent and exported spans agree.
  const active = activeSpanIds(incoming);
  if (active !== undefined) return active;
  const parent = parseTraceparent(header);
  const spanId = newSpanId();
  if (parent !== undefined) return { traceId: parent.traceId, spanId, traceFlags: parent.traceFlags };
  return { traceId: randomHex(16), spanId, traceFlags: '01' };
}

/** A valid inbound W3C traceparent's trace id and flags; undefined when missing or invalid. */
export function parseTraceparent(header: string | string[] | undefined): { traceId: string; traceFlags: string } | undefined {
  const value = firstHeader(header);
  const match = value === undefined ? null : TRACEPARENT.exec(value.trim());
  if (match === null) return undefined;
  const [, version, traceId, parentId, flags, rest] = match;
  // version ff is forbidden; version 00 allows nothing after the flags
  const versionOk = version !== 'ff' && (version !== '00' || rest === undefined);
  if (!versionOk || traceId === ZERO_TRACE || parentId === ZERO_SPAN) return undefined;
  return { traceId: traceId!, traceFlags: flags! };
}

/** W3C trace-context §3.3: at most 32 list members. */
export const TRACESTATE_MAX_MEMBERS = 32;
const TRACESTATE_KEY = /^(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})$/;
const TRACESTATE_VALUE = /^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;

/**
 * The tracestate to pass on: only alongside a valid traceparent (W3C trace-context §3.3: without
 * one it must be discarded), several headers joined, well-formed members only, the first of a
 * repeated key, at most 32 members. Undefined when nothing is left.
 */
export function acceptTracestate(header: string | string[] | undefined, traceparent: string | string[] | undefined): string | undefined {
  if (header === undefined || parseTraceparent(traceparent) === undefined) return undefined;
  const members: string[] = [];
  const keys = new Set<string>();
  for (const raw of (Array.isArray(header) ? header.join(',') : header).split(',')) {
    const member = raw.trim();
    const equals = member.indexOf('=');
    if (equals <= 0) continue;
    const key = member.slice(0, equals);
    const value = member.slice(equals + 1);
    if (!TRACESTATE_KEY.test(key) || !TRACESTATE_VALUE.test(value) || keys.has(key)) continue;
    keys.add(key);
    members.push(member);
    if (members.length === TRACESTATE_MAX_MEMBERS) break;
  }
  return members.length === 0 ? undefined : members.join(',');
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
  const value = firstHeader(header);
  return value !== undefined && CORRELATION_ID.test(value) ? value : undefined;
}
