import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger';
import { durationJson, logRequest } from '../../src/observability/request-edge';

describe('the hand-written request line', () => {
  it('is the JSON pino would write: ISO time to the millisecond, escaped free text, null for an unknown address', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(chunk.toString('utf8'));
        callback();
      },
    });
    const logger = createLogger('info', sink);
    const context = {
      requestId: '6f1c2a9e-0d51-4b7e-9a55-0a4cf3a1d1f2',
      correlationId: 'abc.1:2-3',
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      spanId: '00f067aa0ba902b7',
      traceFlags: '01',
      clientIp: undefined as unknown as string,
      principalId: 'p-1',
      tenantId: 'acme',
      authz: { decision: 'deny' as const, reason: 'deny: "quoted" \\ and\nnewline' },
      upstream: 'projection p1 127.0.0.1:1 200 in 1.0 ms',
    };
    const before = Date.now();
    for (let i = 0; i < 3; i += 1) {
      logRequest(logger, context, { method: 'POST', route: '/v1/query/:view_type', status: 200, durationMs: 1.23456 });
    }
    const after = Date.now();
    expect(lines).toHaveLength(3);
    for (const text of lines) {
      expect(text.endsWith('}\n')).toBe(true);
      const line = JSON.parse(text) as Record<string, unknown>;
      expect(line).toMatchObject({
        level: 'info',
        request_id: context.requestId,
        correlation_id: context.correlationId,
        trace_id: context.traceId,
        span_id: context.spanId,
        principal_id: 'p-1',
        tenant_id: 'acme',
        method: 'POST',
        route: '/v1/query/:view_type',
        status: 200,
        duration_ms: 1.23,
        upstream: context.upstream,
        authz: context.authz,
        ip: null,
        msg: 'request',
      });
      expect(line.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      const time = Date.parse(line.time as string);
      expect(time).toBeGreaterThanOrEqual(before);
      expect(time).toBeLessThanOrEqual(after);
    }
  });

  it('writes duration_ms as the number Math.round(ms * 100) / 100 prints, whole or fractional', () => {
    const samples = [
      0, -0, 0.004, 0.005, 0.1, 0.25, 1, 1.005, 1.2, 1.23456, 9.999, 10, 99.95, 123.4, 5000, 12345.678, 21474836.47, 1e9, 3e12,
    ];
    for (let i = 0; i < 20_000; i += 1) samples.push(Math.random() * 10 ** Math.floor(Math.random() * 7));
    for (const ms of samples) expect(durationJson(ms)).toBe(String(Math.round(ms * 100) / 100));
  });
});
