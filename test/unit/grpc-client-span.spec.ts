import * as api from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installActiveSpanReader } from '../../src/observability/active-span';
import { startClientSpan } from '../../src/proxy/grpc-tracing';

describe('gRPC client span headers', () => {
  beforeAll(() => {
    api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    // OpenTelemetry's default: trace context and baggage
    api.propagation.setGlobalPropagator(
      new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
    );
    installActiveSpanReader(() => undefined);
  });
  afterAll(() => {
    api.context.disable();
    api.propagation.disable();
  });

  it('sends every field the propagator writes (baggage too), replacing the stamped traceparent', () => {
    const parent = api.trace.wrapSpanContext({
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      traceFlags: api.TraceFlags.SAMPLED,
    });
    const baggage = api.propagation.createBaggage({ tenant: { value: 'acme' } });
    const active = api.propagation.setBaggage(api.trace.setSpan(api.ROOT_CONTEXT, parent), baggage);
    const headers = [':path', '/x', 'traceparent', '00-0af7651916cd43dd8448eb211c80319c-aaaaaaaaaaaaaaaa-01', 'tracestate', 'old=1'];
    api.context.with(active, () => startClientSpan('127.0.0.1:50051', headers)(0));
    const fields = new Map<string, string>();
    for (let i = 0; i < headers.length; i += 2) fields.set(headers[i]!, headers[i + 1]!);
    expect(fields.get('traceparent')).toMatch(/^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
    expect(fields.has('tracestate')).toBe(false);
    expect(fields.get('baggage')).toBe('tenant=acme');
    expect(fields.get(':path')).toBe('/x');
    expect(headers.filter((_, i) => i % 2 === 0 && headers[i] === 'traceparent')).toHaveLength(1);
  });
});
