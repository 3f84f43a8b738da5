import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signinAdmin, userWithRole } from '../support/admin-fixtures';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { commandClient, fakeAggregate, fakeHttp, submitCommand, type FakeAggregate, type FakeHttp } from '../support/fake-upstreams';
import { http as request } from '../support/http';
import { freePort, spawnGatehouse, waitFor, type GatehouseProcess } from '../support/process';
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
  let deadPort: number;

  beforeAll(async () => {
    [db, projection, aggregate, receiver] = await Promise.all([
      createTestDatabase(),
      fakeHttp('proj-trace'),
      fakeAggregate('agg-trace'),
      otlpReceiver(),
    ]);
    deadPort = await freePort();
    const deadEndpoint = `127.0.0.1:${deadPort}`;
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gh-routing-')), 'routing.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        // beta's first projection endpoint refuses connections: a query there takes two attempts
        projection: {
          placement: { acme: 'p1', beta: 'p2' },
          shards: { p1: [projection.endpoint], p2: [deadEndpoint, projection.endpoint] },
        },
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

  /** The spans of one trace once its root (the span continuing the inbound traceparent) and everything it waited for are exported. */
  async function exportedTrace(traceId: string): Promise<ExportedSpan[]> {
    const ofTrace = () => receiver.spans.filter((span) => span.traceId === traceId);
    await waitFor(() => ofTrace().some((span) => span.parentSpanId === INBOUND_SPAN), 15_000, 50);
    // the root ends last; a span ended just before it may sit in the next batch (OTEL_BSP_SCHEDULE_DELAY 100 ms)
    let count = -1;
    await waitFor(
      () => {
        const now = ofTrace().length;
        const settled = now === count;
        count = now;
        return settled;
      },
      15_000,
      300,
    );
    return ofTrace();
  }

  const KIND_NAMES = ['UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'];
  /** The attributes a tree line shows: the ones that say what a span stands for, none that change from run to run. */
  const SHOWN_ATTRIBUTES = ['http.route', 'http.response.status_code', 'rpc.grpc.status_code', 'error.type', 'server.port'];
  const isDatabase = (span: ExportedSpan) => attribute(span, 'db.system.name') !== undefined;

  /** Ports and the database's name as the tree shows them. */
  function placeholders(): Record<string, string> {
    return {
      [String(projection.port)]: '<projection>',
      [String(deadPort)]: '<refusing endpoint>',
      [String(aggregate.port)]: '<aggregate>',
      [String(gatehouse.port)]: '<gatehouse>',
      [String(gatehouse.grpcPort)]: '<gatehouse grpc>',
      '5432': '<postgres>',
    };
  }

  /**
   * One trace as an indented tree, ids and times left out: "KIND name {attributes}" per span,
   * children indented under their parent, siblings sorted, identical siblings once with ×N. The
   * root is the span continuing the inbound traceparent; a span whose parent is neither that nor
   * a span of the trace is listed under "(parent not exported)", which no snapshot here has.
   */
  function spanTree(spans: ExportedSpan[]): string {
    const names = placeholders();
    const ids = new Set(spans.map((span) => span.spanId));
    const children = new Map<string, ExportedSpan[]>();
    for (const span of spans) {
      const parent = span.parentSpanId === INBOUND_SPAN ? 'inbound' : ids.has(span.parentSpanId ?? '') ? span.parentSpanId! : 'orphan';
      children.set(parent, [...(children.get(parent) ?? []), span]);
    }
    const label = (span: ExportedSpan) => {
      const shown = SHOWN_ATTRIBUTES.flatMap((key) => {
        const value = attribute(span, key);
        if (value === undefined) return [];
        const text = String(Object.values(value)[0]);
        return [`${key}=${key === 'server.port' ? (names[text] ?? text) : text}`];
      });
      if (span.status?.code === 2) shown.push('ERROR');
      for (const event of span.events ?? []) shown.push(`event ${event.name}`);
      return `${KIND_NAMES[span.kind]} ${span.name.replaceAll(db.name, '<database>')}${shown.length === 0 ? '' : ` {${shown.join(', ')}}`}`;
    };
    const render = (parent: string, depth: number): string[] => {
      const counts = new Map<string, number>();
      for (const span of children.get(parent) ?? []) {
        const subtree = [`${'  '.repeat(depth)}${label(span)}`, ...render(span.spanId, depth + 1)].join('\n');
        counts.set(subtree, (counts.get(subtree) ?? 0) + 1);
      }
      return [...counts.keys()].sort().map((subtree) => {
        const count = counts.get(subtree)!;
        if (count === 1) return subtree;
        const [first, ...rest] = subtree.split('\n');
        return [`${first} ×${count}`, ...rest].join('\n');
      });
    };
    const orphans = render('orphan', 1);
    return `\n${[...render('inbound', 0), ...(orphans.length === 0 ? [] : ['(parent not exported)', ...orphans])].join('\n')}\n`;
  }

  /** Each span's parent is the inbound span (the root, exactly one) or a span of the same trace. */
  function expectLinked(spans: ExportedSpan[]): ExportedSpan {
    const ids = new Set(spans.map((span) => span.spanId));
    const roots = spans.filter((span) => span.parentSpanId === INBOUND_SPAN);
    expect(roots).toHaveLength(1);
    for (const span of spans) {
      if (span !== roots[0]) expect(ids.has(span.parentSpanId ?? ''), `${span.name}'s parent is not in the trace`).toBe(true);
    }
    return roots[0]!;
  }

  /** The request's one log line (found by its request id) names this trace and Gatehouse's root span. */
  function expectLogLine(requestId: string, traceId: string, root: ExportedSpan): void {
    const line = gatehouse
      .logs()
      .split('\n')
      .find((entry) => entry.includes(`"request_id":"${requestId}"`) && entry.includes('"msg":"request"'));
    expect(line, `no log line for ${requestId}`).toBeDefined();
    const logged = JSON.parse(line!) as { trace_id: string; span_id: string };
    expect({ trace_id: logged.trace_id, span_id: logged.span_id }).toEqual({ trace_id: traceId, span_id: root.spanId });
  }

  /** No span attribute, event or status message holds a secret. */
  function expectNoSecrets(spans: ExportedSpan[], secrets: string[]): void {
    const exported = JSON.stringify(spans);
    for (const secret of secrets) {
      expect(secret.length).toBeGreaterThan(8);
      expect(exported).not.toContain(secret);
    }
    expect(exported.toLowerCase()).not.toContain('bearer');
    const keys = spans.flatMap((span) => span.attributes.map((entry) => entry.key));
    expect(keys.filter((key) => /authorization|cookie|token|password|secret/i.test(key))).toEqual([]);
  }

  const newTraceId = () => crypto.randomBytes(16).toString('hex');

  describe('span tree of a proxied call', () => {
    let accessToken: string;
    let refreshToken: string;
    let password: string;

    /** A principal of the test's own: its first proxied call loads its grants, whatever ran before. */
    async function freshPrincipal(): Promise<void> {
      const adminToken = await signinAdmin(gatehouse.url, ADMIN_EMAIL, ADMIN_PASSWORD);
      ({ accessToken, refreshToken, password } = await userWithRole(gatehouse.url, adminToken, null, 'platform_admin', 'trace-tree'));
    }

    /** One proxied query continuing a new trace; its exported spans, checked for what every proxied query's trace must hold. */
    async function tracedQuery(tenant: string): Promise<ExportedSpan[]> {
      const traceId = newTraceId();
      const before = projection.calls.length;
      const response = await request(gatehouse.url, 'POST', '/v1/query/orders', {
        json: { filter: 'open' },
        token: accessToken,
        headers: { 'x-tenant-id': tenant, traceparent: `00-${traceId}-${INBOUND_SPAN}-01` },
      });
      expect(response.status, response.text).toBe(200);
      const spans = await exportedTrace(traceId);
      const root = expectLinked(spans);
      // the response and the log line name the trace and Gatehouse's server span
      expect(response.headers.get('traceparent')).toBe(`00-${traceId}-${root.spanId}-01`);
      expectLogLine(response.headers.get('x-request-id')!, traceId, root);

      // the upstream got one traceparent, naming the client span of the attempt that reached it
      const calls = projection.calls.slice(before);
      expect(calls).toHaveLength(1);
      const [, upstreamTrace, upstreamParent, flags] = String(calls[0]!.headers.traceparent).split('-');
      expect({ upstreamTrace, flags }).toEqual({ upstreamTrace: traceId, flags: '01' });
      const client = spans.find((span) => span.spanId === upstreamParent);
      expect(client && { kind: KIND_NAMES[client.kind], port: attribute(client, 'server.port') }).toEqual({
        kind: 'CLIENT',
        port: { intValue: projection.port },
      });
      // under the fast route's handler span
      const handler = spans.find((span) => span.spanId === client!.parentSpanId)!;
      expect(handler.name).toBe('handler - QueryController.query');

      const internalToken = String(calls[0]!.headers.authorization).replace(/^Bearer /, '');
      expectNoSecrets(spans, [accessToken, accessToken.split('.')[2]!, refreshToken, password, internalToken]);
      return spans;
    }

    it('a proxied HTTP query: server span, the request span with its hooks and the handler span, an undici client span per upstream attempt', async () => {
      await freshPrincipal();
      // the principal's first call: what the authorizer loads from the database is under the handler span
      const cold = await tracedQuery('acme');
      const handler = cold.find((span) => span.name === 'handler - QueryController.query')!;
      expect(cold.filter(isDatabase).length).toBeGreaterThan(0);
      for (const span of cold.filter(isDatabase)) {
        expect({ name: span.name, kind: KIND_NAMES[span.kind], parent: span.parentSpanId }).toEqual({
          name: span.name,
          kind: 'CLIENT',
          parent: handler.spanId,
        });
      }
      expect(spanTree(cold)).toMatchInlineSnapshot(`
        "
        SERVER POST /v1/query/:view_type {http.route=/v1/query/:view_type, http.response.status_code=200, server.port=<gatehouse>}
          INTERNAL request {http.route=/v1/query/:view_type, http.response.status_code=200}
            INTERNAL handler - QueryController.query {http.route=/v1/query/:view_type}
              CLIENT POST {http.response.status_code=200, server.port=<projection>}
              CLIENT pg-pool.connect {server.port=<postgres>} ×2
              CLIENT pg.query:SELECT <database> {server.port=<postgres>} ×2
            INTERNAL onRequest - fastify -> @fastify/otel -> @fastify/middie ×8
            INTERNAL onRequest - runMiddie
            INTERNAL onResponse - fastify -> @fastify/otel -> @fastify/middie ×2
        "
      `);
      // the token's checks and the principal's grants now in memory: the same tree without the database
      const warm = await tracedQuery('acme');
      expect(spanTree(cold.filter((span) => !isDatabase(span)))).toBe(spanTree(warm));
      expect(spanTree(warm)).toMatchInlineSnapshot(`
        "
        SERVER POST /v1/query/:view_type {http.route=/v1/query/:view_type, http.response.status_code=200, server.port=<gatehouse>}
          INTERNAL request {http.route=/v1/query/:view_type, http.response.status_code=200}
            INTERNAL handler - QueryController.query {http.route=/v1/query/:view_type}
              CLIENT POST {http.response.status_code=200, server.port=<projection>}
            INTERNAL onRequest - fastify -> @fastify/otel -> @fastify/middie ×8
            INTERNAL onRequest - runMiddie
            INTERNAL onResponse - fastify -> @fastify/otel -> @fastify/middie ×2
        "
      `);
      // beta's shard lists an endpoint refusing connections first: two attempts, two client spans
      expect(spanTree(await tracedQuery('beta'))).toMatchInlineSnapshot(`
        "
        SERVER POST /v1/query/:view_type {http.route=/v1/query/:view_type, http.response.status_code=200, server.port=<gatehouse>}
          INTERNAL request {http.route=/v1/query/:view_type, http.response.status_code=200}
            INTERNAL handler - QueryController.query {http.route=/v1/query/:view_type}
              CLIENT POST {error.type=ECONNREFUSED, server.port=<refusing endpoint>, ERROR, event exception}
              CLIENT POST {http.response.status_code=200, server.port=<projection>}
            INTERNAL onRequest - fastify -> @fastify/otel -> @fastify/middie ×8
            INTERNAL onRequest - runMiddie
            INTERNAL onResponse - fastify -> @fastify/otel -> @fastify/middie ×2
        "
      `);
    });

    /** One SubmitCommand continuing a new trace, the aggregate failing `failNext` attempts first; its exported spans as a tree, checked. */
    async function tracedCommand(failNext: number): Promise<string> {
      const traceId = newTraceId();
      const before = aggregate.calls.length;
      aggregate.state.failNext = failNext;
      const client = commandClient(gatehouse.grpcPort);
      try {
        const { error } = await submitCommand(
          client,
          { aggregate_type: 'order', aggregate_id: 'o-tree', command_id: `c-tree-${traceId}`, command_type: 'order.touch' },
          { authorization: `Bearer ${accessToken}`, 'x-tenant-id': 'acme', traceparent: `00-${traceId}-${INBOUND_SPAN}-01` },
        );
        expect(error).toBeNull();
      } finally {
        client.close();
      }
      const spans = await exportedTrace(traceId);
      const root = expectLinked(spans);
      const calls = aggregate.calls.slice(before);
      expect(calls).toHaveLength(failNext + 1);
      expectLogLine(calls[0]!.metadata['x-request-id']!, traceId, root);
      // each attempt's traceparent names its own client span, a child of the server span
      const clients = spans.filter((span) => attribute(span, 'rpc.system') !== undefined && span.kind === SPAN_KIND_CLIENT);
      expect(calls.map((call) => String(call.metadata.traceparent)).sort()).toEqual(
        clients.map((span) => `00-${traceId}-${span.spanId}-01`).sort(),
      );
      for (const span of clients) expect(span.parentSpanId).toBe(root.spanId);
      const internalToken = String(calls[0]!.metadata.authorization).replace(/^Bearer /, '');
      expectNoSecrets(spans, [accessToken, accessToken.split('.')[2]!, refreshToken, password, internalToken]);
      return spanTree(spans);
    }

    it('a gRPC SubmitCommand: server span, a client span per upstream attempt', async () => {
      await freshPrincipal();
      // the principal's first call: the authorizer's database work is under the server span
      expect(await tracedCommand(0)).toMatchInlineSnapshot(`
        "
        SERVER aggregate.gateway.v1.CommandService/SubmitCommand {rpc.grpc.status_code=0}
          CLIENT aggregate.gateway.v1.CommandService/SubmitCommand {rpc.grpc.status_code=0, server.port=<aggregate>}
          CLIENT pg-pool.connect {server.port=<postgres>} ×2
          CLIENT pg.query:SELECT <database> {server.port=<postgres>} ×2
        "
      `);
      expect(await tracedCommand(0)).toMatchInlineSnapshot(`
        "
        SERVER aggregate.gateway.v1.CommandService/SubmitCommand {rpc.grpc.status_code=0}
          CLIENT aggregate.gateway.v1.CommandService/SubmitCommand {rpc.grpc.status_code=0, server.port=<aggregate>}
        "
      `);
      // the aggregate answers UNAVAILABLE once: a second attempt, a second client span
      expect(await tracedCommand(1)).toMatchInlineSnapshot(`
        "
        SERVER aggregate.gateway.v1.CommandService/SubmitCommand {rpc.grpc.status_code=0}
          CLIENT aggregate.gateway.v1.CommandService/SubmitCommand {rpc.grpc.status_code=0, server.port=<aggregate>}
          CLIENT aggregate.gateway.v1.CommandService/SubmitCommand {rpc.grpc.status_code=14, server.port=<aggregate>, ERROR}
        "
      `);
    });

    it("a sign-in: server span, the request span with its hooks, the fast route's handler span with the database calls under it", async () => {
      const traceId = newTraceId();
      const response = await request(gatehouse.url, 'POST', '/v1/auth/signin', {
        json: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD },
        headers: { traceparent: `00-${traceId}-${INBOUND_SPAN}-01` },
      });
      expect(response.status, response.text).toBe(200);
      const spans = await exportedTrace(traceId);
      const root = expectLinked(spans);
      expect(response.headers.get('traceparent')).toBe(`00-${traceId}-${root.spanId}-01`);
      expectLogLine(response.headers.get('x-request-id')!, traceId, root);
      const { access_token: access, refresh_token: refresh } = response.json as { access_token: string; refresh_token: string };
      expectNoSecrets(spans, [ADMIN_PASSWORD, access, access.split('.')[2]!, refresh]);
      expect(spanTree(spans)).toMatchInlineSnapshot(`
        "
        SERVER POST /v1/auth/signin {http.route=/v1/auth/signin, http.response.status_code=200, server.port=<gatehouse>}
          INTERNAL request {http.route=/v1/auth/signin, http.response.status_code=200}
            INTERNAL handler - PasswordAuthController.signin {http.route=/v1/auth/signin}
              CLIENT pg-pool.connect {server.port=<postgres>} ×2
              CLIENT pg.query:rate_limit_chain_signin_account_within <database> {server.port=<postgres>}
              CLIENT pg.query:session_start <database> {server.port=<postgres>}
            INTERNAL onRequest - fastify -> @fastify/otel -> @fastify/middie ×8
            INTERNAL onRequest - runMiddie
            INTERNAL onResponse - fastify -> @fastify/otel -> @fastify/middie ×2
        "
      `);
    });
  });
});
