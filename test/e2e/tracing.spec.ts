import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { commandClient, fakeAggregate, fakeHttp, submitCommand, type FakeAggregate, type FakeHttp } from '../support/fake-upstreams';
import { http as request } from '../support/http';
import { spawnGatehouse, waitFor, type GatehouseProcess } from '../support/process';
import { servicesAvailable } from '../support/services';

const available = servicesAvailable({ postgres: true });
const ADMIN_EMAIL = 'trace-root@example.com';
const ADMIN_PASSWORD = 'bootstrap admin password 123';
const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const INBOUND_SPAN = 'b7ad6b7169203331';

interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: { key: string; value: Record<string, unknown> }[];
  status?: { code?: number };
  events?: { name: string }[];
}

const SPAN_KIND_SERVER = 2;
const SPAN_KIND_CLIENT = 3;

/** A small OTLP/HTTP receiver: POST /v1/traces with the JSON encoding, spans collected as they come. */
async function otlpReceiver(): Promise<{ url: string; spans: ExportedSpan[]; contentTypes: string[]; close(): Promise<void> }> {
  const spans: ExportedSpan[] = [];
  const contentTypes: string[] = [];
  const server = http.createServer((incoming, response) => {
    const chunks: Buffer[] = [];
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
    incoming.on('end', () => {
      contentTypes.push(String(incoming.headers['content-type']));
      if (incoming.url === '/v1/traces' && String(incoming.headers['content-type']).startsWith('application/json')) {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
          resourceSpans: { scopeSpans: { spans: ExportedSpan[] }[] }[];
        };
        for (const resource of body.resourceSpans) for (const scope of resource.scopeSpans) spans.push(...scope.spans);
      }
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    contentTypes,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const attribute = (span: ExportedSpan, key: string) => span.attributes.find((entry) => entry.key === key)?.value;

describe.skipIf(!available)('OpenTelemetry tracing over OTLP', () => {
  let db: TestDatabase;
  let projection: FakeHttp;
  let aggregate: FakeAggregate;
  let receiver: Awaited<ReturnType<typeof otlpReceiver>>;
  let gatehouse: GatehouseProcess;

  beforeAll(async () => {
    [db, projection, aggregate, receiver] = await Promise.all([
      createTestDatabase(),
      fakeHttp('proj-trace'),
      fakeAggregate('agg-trace'),
      otlpReceiver(),
    ]);
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gh-routing-')), 'routing.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        projection: { placement: { acme: 'p1' }, shards: { p1: [projection.endpoint] } },
        aggregate: { placement: { acme: 'a1' }, shards: { a1: [aggregate.endpoint] } },
      }),
    );
    gatehouse = await spawnGatehouse(
      {
        DATABASE_URL: db.url,
        ROUTING_FILE: file,
        BOOTSTRAP_ADMIN_EMAIL: ADMIN_EMAIL,
        BOOTSTRAP_ADMIN_PASSWORD: ADMIN_PASSWORD,
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_BSP_SCHEDULE_DELAY: '100',
      },
      'tracing',
    );
  });
  afterAll(async () => {
    await gatehouse?.stop();
    await Promise.all([projection?.stop(), aggregate?.stop(), receiver?.close(), db?.drop()]);
  });

  it('exports a proxied request as one trace: server span, client spans for the upstream call and the database, continuing the inbound traceparent', async () => {
    const signin = await request(gatehouse.url, 'POST', '/v1/auth/signin', { json: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } });
    expect(signin.status, signin.text).toBe(200);
    const proxied = await request(gatehouse.url, 'POST', '/v1/query/orders', {
      json: { filter: 'open' },
      token: signin.json.access_token,
      headers: { 'x-tenant-id': 'acme', traceparent: `00-${TRACE_ID}-${INBOUND_SPAN}-01` },
    });
    expect(proxied.status, proxied.text).toBe(200);

    // the upstream got one traceparent, of the inbound trace
    const call = projection.calls.at(-1)!;
    expect(call.headers.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    const [, upstreamTrace, upstreamParent] = (call.headers.traceparent as string).split('-');
    expect(upstreamTrace).toBe(TRACE_ID);
    // the response names the same trace
    expect(proxied.headers.get('traceparent')).toMatch(new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-01$`));

    await waitFor(() => receiver.spans.some((span) => span.spanId === upstreamParent), 15_000, 50);
    const inTrace = receiver.spans.filter((span) => span.traceId === TRACE_ID);
    const server = inTrace.find((span) => span.kind === SPAN_KIND_SERVER && span.parentSpanId === INBOUND_SPAN);
    expect(server, JSON.stringify(inTrace.map((span) => span.name))).toBeDefined();
    expect(attribute(server!, 'http.route')).toEqual({ stringValue: '/v1/query/:view_type' });

    // the span the upstream names as its parent is an HTTP client span of this trace
    const client = inTrace.find((span) => span.spanId === upstreamParent)!;
    expect(client.kind).toBe(SPAN_KIND_CLIENT);
    expect(attribute(client, 'server.port')).toEqual({ intValue: projection.port });

    // database work of the request (authorization, token checks) is in the trace too
    const database = inTrace.filter(
      (span) => span.kind === SPAN_KIND_CLIENT && (attribute(span, 'db.system.name') ?? attribute(span, 'db.system')) !== undefined,
    );
    expect(database.length).toBeGreaterThan(0);
    expect(receiver.contentTypes.every((type) => type.startsWith('application/json'))).toBe(true);
  });

  it('exports a gRPC SubmitCommand as a server span and a client span for the aggregate call, continuing the inbound traceparent', async () => {
    const signin = await request(gatehouse.url, 'POST', '/v1/auth/signin', { json: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } });
    const traceId = 'a3ce929d0e0e47364bf92f3577b34da6';
    const client = commandClient(gatehouse.grpcPort);
    try {
      const { error } = await submitCommand(
        client,
        { aggregate_type: 'order', aggregate_id: 'o-1', command_id: 'c-trace', command_type: 'order.touch' },
        { authorization: `Bearer ${signin.json.access_token}`, 'x-tenant-id': 'acme', traceparent: `00-${traceId}-${INBOUND_SPAN}-01` },
      );
      expect(error).toBeNull();
    } finally {
      client.close();
    }
    const upstream = String(aggregate.calls.at(-1)!.metadata.traceparent);
    const [, upstreamTrace, upstreamParent] = upstream.split('-');
    expect(upstreamTrace).toBe(traceId);
    await waitFor(() => receiver.spans.some((span) => span.spanId === upstreamParent), 15_000, 50);
    const inTrace = receiver.spans.filter((span) => span.traceId === traceId);
    const server = inTrace.find((span) => span.kind === SPAN_KIND_SERVER && span.parentSpanId === INBOUND_SPAN);
    expect(server, JSON.stringify(inTrace.map((span) => span.name))).toBeDefined();
    expect(server!.name).toBe('aggregate.gateway.v1.CommandService/SubmitCommand');
    expect(attribute(server!, 'rpc.grpc.status_code')).toEqual({ intValue: 0 });
    const upstreamClient = inTrace.find((span) => span.spanId === upstreamParent)!;
    expect(upstreamClient.kind).toBe(SPAN_KIND_CLIENT);
    expect(upstreamClient.parentSpanId).toBe(server!.spanId);
    expect(attribute(upstreamClient, 'server.port')).toEqual({ intValue: aggregate.port });
  });

  /** The spans of one sign-in, each as "kind name <- parent's name [status code, event names]", once each. */
  async function signinTrace(json: unknown, status: number): Promise<string[]> {
    const traceId = crypto.randomBytes(16).toString('hex');
    const signin = await request(gatehouse.url, 'POST', '/v1/auth/signin', {
      json,
      headers: { traceparent: `00-${traceId}-${INBOUND_SPAN}-01` },
    });
    expect(signin.status, signin.text).toBe(status);
    const ofTrace = () => receiver.spans.filter((span) => span.traceId === traceId);
    // the server span ends last: every span of the sign-in has been exported with it
    await waitFor(() => ofTrace().some((span) => span.kind === SPAN_KIND_SERVER && span.parentSpanId === INBOUND_SPAN), 15_000, 50);
    const inTrace = ofTrace();
    const byId = new Map(inTrace.map((span) => [span.spanId, span]));
    const described = inTrace.map((span) => {
      const parent = span.parentSpanId === INBOUND_SPAN ? '(inbound)' : (byId.get(span.parentSpanId ?? '')?.name ?? '(none)');
      const events = (span.events ?? []).map((event) => event.name).join(',');
      return `${span.kind} ${span.name} <- ${parent} [${span.status?.code ?? 0}${events === '' ? '' : ` ${events}`}]`.replaceAll(
        db.name,
        '<database>',
      );
    });
    return [...new Set(described)].sort();
  }

  it("exports a sign-in as one trace: the server span, Fastify's request and handler spans, the database calls", async () => {
    expect({
      signedIn: await signinTrace({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD }, 200),
      wrongPassword: await signinTrace({ email: ADMIN_EMAIL, password: 'not the admin password 1' }, 401),
      invalidBody: await signinTrace({ email: 'nobody' }, 400),
    }).toMatchSnapshot();
  });

  it('keeps secrets and probes out of the spans', async () => {
    await request(gatehouse.url, 'GET', '/health');
    await request(gatehouse.url, 'GET', '/metrics');
    const marker = await request(gatehouse.url, 'GET', '/v1/auth/me', { headers: { authorization: 'Bearer SECRET-TOKEN-IN-TRACE' } });
    expect(marker.status).toBe(401);
    const traceId = marker.headers.get('traceparent')!.split('-')[1]!;
    await waitFor(() => receiver.spans.some((span) => span.traceId === traceId), 15_000, 50);
    const everything = JSON.stringify(receiver.spans);
    expect(everything).not.toContain('SECRET-TOKEN-IN-TRACE');
    expect(everything).not.toContain(ADMIN_PASSWORD);
    const routes = receiver.spans.map((span) => attribute(span, 'url.path') ?? attribute(span, 'http.target'));
    expect(routes).not.toContainEqual({ stringValue: '/health' });
    expect(routes).not.toContainEqual({ stringValue: '/metrics' });
  });
});
