import { describe, expect, it } from 'vitest';
import { acceptCorrelationId, continueTrace, formatTraceparent } from '../../src/observability/trace-context';

describe('continueTrace', () => {
  it('continues a valid traceparent with a new span', () => {
    const trace = continueTrace('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
    expect(trace.traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(trace.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(trace.spanId).not.toBe('00f067aa0ba902b7');
    expect(formatTraceparent(trace)).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
  });

  it.each([
    '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
    '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
    'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01',
    '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra',
    'garbage',
    '',
  ])('starts a new trace for %j', (header) => {
    const trace = continueTrace(header);
    expect(trace.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(trace.traceId).not.toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(trace.traceId).not.toBe('0'.repeat(32));
  });
});

describe('acceptCorrelationId', () => {
  it.each(['order-42.retry:1', 'a', 'A_b-c.d:e'])('keeps %j', (value) => expect(acceptCorrelationId(value)).toBe(value));
  it.each(['has space', 'x'.repeat(129), 'evil<script>', 'a\r\nSet-Cookie: x=y', '%0d%0a', ''])('refuses %j', (value) =>
    expect(acceptCorrelationId(value)).toBeUndefined(),
  );
});
