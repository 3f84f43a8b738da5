import { AsyncLocalStorage } from 'node:async_hooks';
import { Counter, Registry } from 'prom-client';
import { describe, expect, it, vi } from 'vitest';

// Which request's async context each upstream attempt starts in (the OTel context manager is an
// AsyncLocalStorage too: the span's parent and the traceparent/baggage sent come from there)
const probe = new AsyncLocalStorage<string>();
const seen: { caller: string; attemptRanIn: string | undefined }[] = [];
vi.mock('../../src/proxy/grpc-tracing', () => ({
  startClientSpan: (_endpoint: string, headers: string[]) => {
    const caller = headers[headers.indexOf('x-request-id') + 1]!;
    seen.push({ caller, attemptRanIn: probe.getStore() });
    return () => undefined;
  },
}));

import { GrpcUpstreamClient } from '../../src/proxy/grpc-upstream.client';

describe('gRPC upstream attempts', () => {
  it("each attempt, retries included, runs in its own call's async context when two calls share a refused connection", async () => {
    const registry = new Registry();
    const upstreamRequests = new Counter({ name: 'x', help: 'x', labelNames: ['service_kind', 'outcome'], registers: [registry] });
    const shard = { kind: 'aggregate', shardId: 's1', endpoints: ['127.0.0.1:1'] };
    const client = new GrpcUpstreamClient(
      { resolve: () => shard, onChange: () => undefined } as never,
      { plan: (s: typeof shard) => s.endpoints, enter: () => ({}), settle: () => undefined } as never,
      { mintNow: () => 'tok', mint: () => Promise.resolve('tok') } as never,
      { upstreamRequests } as never,
      { onChange: () => undefined, material: () => undefined } as never,
      { UPSTREAM_TIMEOUT_MS: 5000 } as never,
    );
    const call = (id: string) =>
      probe.run(id, () =>
        client
          .forward({
            request: Buffer.from([0x0a, 0x01, 0x41]),
            principal: { id: 'p', type: 'user' } as never,
            tenantId: 't',
            context: { requestId: id, correlationId: id, traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331' } as never,
          })
          .catch((error: unknown) => error),
      );
    await Promise.all([call('A'), call('B')]);
    // A and B each fail 4 attempts (refused): every one of the 8 started in its own call's context
    expect(seen).toHaveLength(8);
    for (const { caller, attemptRanIn } of seen) expect(attemptRanIn).toBe(caller);
  });
});
