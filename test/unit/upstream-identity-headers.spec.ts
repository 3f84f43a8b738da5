import { describe, expect, it } from 'vitest';
import type { RequestContext } from '../../src/common/request-context';
import { appendIdentity, stampIdentity, type UpstreamIdentity } from '../../src/proxy/upstream-headers';

const context: RequestContext = {
  requestId: 'b1f4c0de-0000-4000-8000-000000000001',
  correlationId: 'corr-42',
  traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
  spanId: '00f067aa0ba902b7',
  traceFlags: '01',
  clientIp: '127.0.0.1',
};

function identity(overrides: Partial<UpstreamIdentity> = {}): UpstreamIdentity {
  return {
    principal: { id: 'user-1', type: 'user', amr: ['pwd'] },
    tenantId: 'acme',
    internalToken: 'internal.jwt.value',
    context,
    ...overrides,
  };
}

/** The raw list as an object (every name once), to compare with the header object. */
function asObject(pairs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let index = 0; index < pairs.length; index += 2) {
    expect(out[pairs[index]!], `${pairs[index]} given twice`).toBeUndefined();
    out[pairs[index]!] = pairs[index + 1]!;
  }
  return out;
}

describe("appendIdentity (the gRPC leg's raw header list) carries what stampIdentity stamps (CONTRACT §7)", () => {
  it.each([
    ['with a tenant', identity()],
    ['without a tenant', identity({ tenantId: undefined })],
    ['with an inbound tracestate', identity({ context: { ...context, tracestate: 'vendor=abc' } })],
  ])('%s', (_name, given) => {
    const stamped: Record<string, string | string[]> = {};
    stampIdentity(stamped, given);
    const pairs = [':method', 'POST'];
    appendIdentity(pairs, given);
    expect(asObject(pairs)).toEqual({ ':method': 'POST', ...stamped });
    expect(stamped.authorization).toBe('Bearer internal.jwt.value');
  });
});
