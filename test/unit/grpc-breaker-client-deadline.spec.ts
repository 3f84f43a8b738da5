import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { Counter, Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/common/app-error';
import { EndpointBreakers } from '../../src/proxy/endpoint-breakers.service';
import { GrpcUpstreamClient } from '../../src/proxy/grpc-upstream.client';

// an aggregate that takes every call and never answers: each attempt ends in a timeout
let server: http2.Http2Server;
let endpoint: string;
beforeAll(async () => {
  server = http2.createServer();
  server.on('stream', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

function setUp() {
  const config = { UPSTREAM_TIMEOUT_MS: 150, UPSTREAM_BREAKER_FAILURES: 2, UPSTREAM_BREAKER_COOLDOWN_MS: 60_000 };
  const logger = { info: () => undefined, warn: () => undefined };
  const breakers = new EndpointBreakers(config as never, logger as never, { onChange: () => undefined } as never);
  const upstreamRequests = new Counter({ name: 'x', help: 'x', labelNames: ['service_kind', 'outcome'], registers: [new Registry()] });
  const shard = { kind: 'aggregate' as const, shardId: 's1', endpoints: [endpoint] };
  const client = new GrpcUpstreamClient(
    { resolve: () => shard, onChange: () => undefined } as never,
    breakers,
    { mintNow: () => 'tok', mint: () => Promise.resolve('tok') } as never,
    { upstreamRequests } as never,
    { onChange: () => undefined, material: () => undefined } as never,
    config as never,
  );
  const call = (deadline?: number) =>
    client
      .forward({
        request: Buffer.from([0x0a, 0x01, 0x41, 0x12, 0x01, 0x42, 0x1a, 0x01, 0x43, 0x22, 0x01, 0x44]),
        principal: { id: 'p', type: 'user' } as never,
        tenantId: 't',
        deadline,
        context: { requestId: 'r', correlationId: 'c', traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331' } as never,
      })
      .then(
        () => 'answered',
        (error: unknown) => (error instanceof AppError ? error.code : String(error)),
      );
  return { call, breakers, shard, client };
}

describe("gRPC upstream breaker and the client's deadline", () => {
  it("timeouts within a client deadline shorter than UPSTREAM_TIMEOUT_MS do not open the endpoint's circuit", async () => {
    const { call, breakers, shard, client } = setUp();
    for (let i = 0; i < 4; i += 1) expect(await call(Date.now() + 30)).toBe('upstream_timeout');
    // still closed: the shard is planned, and a call with Gatehouse's own timeout reaches the endpoint
    expect(breakers.plan(shard as never)).toEqual([endpoint]);
    expect(await call()).toBe('upstream_timeout');
    client.onApplicationShutdown();
  });

  it("timeouts within Gatehouse's own upstream timeout still count: the circuit opens", async () => {
    const { call, breakers, shard, client } = setUp();
    expect(await call()).toBe('upstream_timeout');
    expect(await call()).toBe('upstream_timeout');
    expect(() => breakers.plan(shard as never)).toThrow(AppError);
    expect(await call()).toBe('circuit_open');
    client.onApplicationShutdown();
  });
});
