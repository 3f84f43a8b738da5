#!/usr/bin/env node
'use strict';
/*
 * node scripts/bench-proxy.js   (part of `npm run bench`; after npm run build; needs PostgreSQL on 127.0.0.1:5432)
 *
 * Prints numbers, asserts nothing. Everything is measured in one run, against one fake upstream
 * process, so ratios hold on a noisy shared machine even when absolute rates do not:
 *  - authenticated POST /v1/query/{view} through Gatehouse (production log level, limits on but
 *    set high) vs the floor proxy (bare Fastify + undici, the same versions, keep-alive pool, body
 *    streamed, one process, no auth) vs nginx proxy_pass (one process, upstream keep-alive) vs
 *    straight to the upstream: requests/s, p50/p99, and CPU µs per request of the proxy process
 *    (from /proc/<pid>/stat, which depends far less on what else runs than rates do); then p99 at
 *    half of Gatehouse's saturation rate, via Gatehouse and direct;
 *  - gRPC SubmitCommand through Gatehouse vs a bare grpc-js pass-through and a bare node:http2
 *    pass-through (the floors) vs straight to the fake aggregate (32 callers);
 *  - WebSocket echo round trips through Gatehouse vs a bare `ws` relay (the floor) vs straight to the
 *    fake projection (8 sockets); gRPC and WebSocket targets interleaved in BENCH_ROUNDS rounds too;
 *  - RSS per idle relayed WebSocket (BENCH_RSS_BATCHES batches of 1,000 sockets held open through
 *    Gatehouse, each batch measured after a full collection, the median batch reported), with plaintext upstreams
 *    and again through a second Gatehouse with mTLS upstreams (UPSTREAM_TLS_*: a throw-away CA, server
 *    and client certificate made with openssl, a TLS fake projection requiring the client certificate),
 *    against the floor: a process holding 1,000 bare `tls.connect` client connections to the same
 *    server (and 1,000 bare `net.connect` ones to the plaintext one);
 *  - with NATS (BENCH_NATS_URL, default nats://127.0.0.1:4222 when reachable): the HTTP query at
 *    WORKERS=1 and WORKERS=2.
 * nginx must be installed (apt-get install -y nginx); without it its row is skipped.
 * BENCH_ONLY=http, grpc, ws, rss or workers runs one section (comma-separated for several); BENCH_ROUNDS
 * (default 4) interleaves the HTTP targets in rounds (gRPC and WebSocket: every other round in reverse
 * order, after BENCH_WARM_SECONDS (2) of unmeasured load on each target).
 * BENCH_GATEHOUSE_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles Gatehouse under load.
 * GC: Gatehouse and the floor proxy load scripts/gc-probe.js (BENCH_GC=0: not), and the half-saturation
 * runs print bytes allocated per request and the collections' pauses. BENCH_ONLY=gc (only when named)
 * runs Gatehouse and the floor paced at BENCH_GC_RATE/s (1500) in BENCH_GC_ROUNDS (4) rounds of
 * BENCH_GC_SECONDS (6), and a second Gatehouse B alternating with it when BENCH_GC_B_NODE_ARGS
 * (e.g. "--max-semi-space-size=32") or BENCH_GC_B_DIST (another build's dist directory) is set.
 * BENCH_GRPC_B_DIST (another build's dist directory, inside the repository so that it finds node_modules)
 * adds a second Gatehouse B to the gRPC rounds: A/B pairs of two builds in one run, B measured right after A
 * (BENCH_ROUND_DETAIL=1 prints every round; BENCH_GRPC_AB_ONLY=1 runs only A and B, and with
 * BENCH_GRPC_AB_CONCURRENT=1 then also loads both at once for BENCH_ROUNDS more rounds).
 */
const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const { sleep, freePort, waitForPort, stopChildren, admissionBench, productionNodeArgs } = require('./bench-support');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
const PROTO = path.join(ROOT, 'proto', 'aggregate', 'gateway', 'v1', 'command_service.proto');
const LOADER = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
const PG_ADMIN = process.env.BENCH_PG_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const NATS_URL = process.env.BENCH_NATS_URL ?? 'nats://127.0.0.1:4222';
const DURATION = Number(process.env.BENCH_SECONDS ?? 8);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const GRPC_CALLERS = Number(process.env.BENCH_GRPC_CALLERS ?? 32);
const WS_SOCKETS = Number(process.env.BENCH_WS_SOCKETS ?? 8);
const IDLE_SOCKETS = Number(process.env.BENCH_IDLE_SOCKETS ?? 1000);
const RSS_BATCHES = Number(process.env.BENCH_RSS_BATCHES ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 4);
// unmeasured load on every gRPC / WebSocket target before the interleaved rounds (BENCH_WARM_SECONDS=0: none)
const WARM_SECONDS = Number(process.env.BENCH_WARM_SECONDS ?? 2);
// limits on/off: pairs of runs and seconds per run (BENCH_LIMITS_ROUNDS, BENCH_LIMITS_SECONDS)
const LIMITS_ROUNDS = Number(process.env.BENCH_LIMITS_ROUNDS ?? 8);
const LIMITS_SECONDS = Number(process.env.BENCH_LIMITS_SECONDS ?? 3);
const QUERY_BODY = JSON.stringify({ filter: { status: 'open', customer: 'c-42' }, limit: 20 });
// GC inside the measured windows (scripts/gc-probe.js loaded into Gatehouse and the floor proxy); BENCH_GC=0 leaves it out
const GC_PROBE = process.env.BENCH_GC !== '0';
const GC_PROBE_SCRIPT = path.join(__dirname, 'gc-probe.js');
// BENCH_ONLY=gc: paced runs at BENCH_GC_RATE/s, BENCH_GC_ROUNDS pairs of BENCH_GC_SECONDS each (A = this build; B = BENCH_GC_B_NODE_ARGS and/or BENCH_GC_B_DIST)
const GC_RATE = Number(process.env.BENCH_GC_RATE ?? 1500);
const GC_ROUNDS = Number(process.env.BENCH_GC_ROUNDS ?? 4);
const GC_SECONDS = Number(process.env.BENCH_GC_SECONDS ?? 6);
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim() || 100);

/* ---------- upstream process: HTTP + WebSocket echo projection and gRPC aggregate ---------- */

async function serveUpstreams() {
  const grpc = require('@grpc/grpc-js');
  const protoLoader = require('@grpc/proto-loader');
  const { WebSocketServer } = require('ws');
  const answer = JSON.stringify({
    items: Array.from({ length: 20 }, (_, i) => ({ id: `o-${i}`, status: 'open', total: i * 10 })),
    next_cursor: null,
  });
  const server = http.createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) });
      response.end(answer);
    });
  });
  server.keepAliveTimeout = 60_000;
  const wss = new WebSocketServer({ server, perMessageDeflate: false });
  wss.on('connection', (socket) => socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary })));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));

  const definition = protoLoader.loadSync(PROTO, LOADER);
  const Service = grpc.loadPackageDefinition(definition).aggregate.gateway.v1.CommandService;
  const grpcServer = new grpc.Server();
  grpcServer.addService(Service.service, {
    SubmitCommand: (call, callback) =>
      callback(null, {
        aggregate_id: call.request.aggregate_id,
        version: '7',
        events: [{ event_id: call.request.command_id, event_type: 'done', version: '7', payload: call.request.payload }],
      }),
  });
  const grpcPort = await new Promise((resolve, reject) =>
    grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => (error ? reject(error) : resolve(port))),
  );
  process.stdout.write(JSON.stringify({ httpPort: server.address().port, grpcPort }) + '\n');
}

/* ---------- the floor: the least a Node proxy of this request costs ---------- */

/**
 * A bare Fastify + undici reverse proxy with the versions Gatehouse uses: one process, a
 * keep-alive pool, the request body streamed to the upstream and the response streamed back,
 * hop-by-hop headers dropped. No authentication, no logging, no metrics.
 */
async function serveFloor(upstream) {
  const Fastify = require('fastify');
  const { Agent } = require('undici');
  const agent = new Agent({ connections: 256, keepAliveTimeout: 30_000, keepAliveMaxTimeout: 600_000 });
  const hopByHop = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection']);
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
  app.removeAllContentTypeParsers();
  // the body stays a stream: the route hands it to undici as it arrives
  app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
  app.post('/v1/query/:view', async (request, reply) => {
    const headers = {};
    for (const [name, value] of Object.entries(request.headers)) {
      if (!hopByHop.has(name) && name !== 'host') headers[name] = value;
    }
    const response = await agent.request({
      origin: upstream,
      path: request.url,
      method: 'POST',
      headers,
      body: request.body,
    });
    const out = {};
    for (const [name, value] of Object.entries(response.headers)) if (!hopByHop.has(name)) out[name] = value;
    reply.code(response.statusCode).headers(out);
    return reply.send(response.body);
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  process.stdout.write(JSON.stringify({ port: app.server.address().port }) + '\n');
}

/**
 * The floor of a WebSocket relay in Node: a bare `ws` server that opens one upstream socket per
 * client and relays every message raw, with the options Gatehouse's relay uses (no compression,
 * no UTF-8 validation). No authentication, no limits, no logging.
 */
async function serveWsFloor(upstream) {
  const { WebSocketServer, WebSocket } = require('ws');
  const server = http.createServer((_request, response) => response.writeHead(404).end());
  const wss = new WebSocketServer({ server, perMessageDeflate: false, skipUTF8Validation: true });
  wss.on('connection', (client, request) => {
    const target = new WebSocket(`${upstream}${request.url}`, { perMessageDeflate: false, skipUTF8Validation: true });
    const pending = [];
    target.on('open', () => {
      for (const [data, isBinary] of pending.splice(0)) target.send(data, { binary: isBinary });
    });
    client.on('message', (data, isBinary) =>
      target.readyState === WebSocket.OPEN ? target.send(data, { binary: isBinary }) : pending.push([data, isBinary]),
    );
    target.on('message', (data, isBinary) => client.send(data, { binary: isBinary }));
    const end = () => {
      client.terminate();
      target.terminate();
    };
    client.on('close', end);
    target.on('close', end);
    client.on('error', end);
    target.on('error', end);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
}

/**
 * The floor of a raw WebSocket relay in Node (as nginx relays): it completes the client's
 * handshake itself and opens the upstream's with plain `http` (no extension on either leg, so a
 * frame is valid on both as it is), then copies the two TCP streams, each through Gatehouse's
 * frame-header scanner (boundaries, size limit, message count) instead of a WebSocket parser.
 * No authentication, no limits beyond the scanner's, no logging.
 */
async function serveRawWsFloor(upstream) {
  const { FrameScanner, acceptKey } = require(path.join(ROOT, 'dist', 'proxy', 'subscription-frames.js'));
  const target = new URL(upstream);
  const pipe = (source, sink, scanner) => {
    source.on('data', (chunk) => {
      const out = scanner.scan(chunk);
      if (out.length > 0 && !sink.write(out)) {
        source.pause();
        sink.once('drain', () => source.resume());
      }
      if (scanner.stopped !== undefined) {
        source.destroy();
        sink.destroy();
      }
    });
  };
  const server = http.createServer((_request, response) => response.writeHead(404).end());
  server.on('upgrade', (request, socket, head) => {
    const key = crypto.randomBytes(16).toString('base64');
    const outbound = http.request({
      host: target.hostname,
      port: target.port,
      path: request.url,
      headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': key },
    });
    outbound.on('upgrade', (response, upstreamSocket, upstreamHead) => {
      if (response.headers['sec-websocket-accept'] !== acceptKey(key)) return socket.destroy();
      socket.write(
        `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(request.headers['sec-websocket-key'])}\r\n\r\n`,
      );
      socket.setNoDelay(true);
      upstreamSocket.setNoDelay(true);
      const up = new FrameScanner({ masked: true, maxMessageBytes: 1024 * 1024, admitMessage: () => undefined });
      const down = new FrameScanner({ masked: false, maxMessageBytes: 1024 * 1024 });
      if (head.length > 0) upstreamSocket.write(up.scan(head));
      if (upstreamHead.length > 0) socket.write(down.scan(upstreamHead));
      pipe(socket, upstreamSocket, up);
      pipe(upstreamSocket, socket, down);
      const end = () => {
        socket.destroy();
        upstreamSocket.destroy();
      };
      for (const side of [socket, upstreamSocket]) {
        side.on('close', end);
        side.on('error', end);
      }
    });
    outbound.on('error', () => socket.destroy());
    outbound.end();
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
}

/**
 * The floor of a gRPC proxy in Node: a bare grpc-js server whose SubmitCommand forwards the
 * request bytes to the upstream over one channel and answers its response bytes (identity
 * serializers, as Gatehouse's pass-through). It is called with the client metadata Gatehouse gets
 * (bearer token, tenant) and stamps the seven entries CONTRACT §7 puts on every upstream call (an
 * internal token of the same size, ids, traceparent): with ~1 KB of headers each way, HTTP/2
 * header handling is most of a call's cost in grpc-js. No authentication, no limits, no logging.
 */
async function serveGrpcFloor(upstream) {
  const grpc = require('@grpc/grpc-js');
  const pass = (bytes) => bytes;
  const path = '/aggregate.gateway.v1.CommandService/SubmitCommand';
  const options = { 'grpc.enable_channelz': 0 };
  // an ES256 internal token is ~520 characters
  const internalToken = `Bearer ${crypto.randomBytes(390).toString('base64url')}`;
  const principalId = crypto.randomUUID();
  const client = new grpc.Client(upstream, grpc.credentials.createInsecure(), { ...options, 'grpc.enable_retries': 0 });
  const server = new grpc.Server(options);
  server.addService(
    {
      SubmitCommand: {
        path,
        requestStream: false,
        responseStream: false,
        requestSerialize: pass,
        requestDeserialize: pass,
        responseSerialize: pass,
        responseDeserialize: pass,
      },
    },
    {
      SubmitCommand: (call, callback) => {
        const metadata = new grpc.Metadata();
        metadata.set('authorization', internalToken);
        metadata.set('x-auth-principal-id', principalId);
        metadata.set('x-auth-principal-type', 'user');
        metadata.set('x-request-id', crypto.randomUUID());
        metadata.set('x-correlation-id', crypto.randomUUID());
        metadata.set('traceparent', `00-${crypto.randomBytes(16).toString('hex')}-${crypto.randomBytes(8).toString('hex')}-01`);
        metadata.set('x-tenant-id', 'acme');
        client.makeUnaryRequest(path, pass, pass, call.request, metadata, { deadline: call.getDeadline() }, callback);
      },
    },
  );
  const port = await new Promise((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  process.stdout.write(JSON.stringify({ port }) + '\n');
}

/**
 * The floor of a gRPC proxy on node:http2 instead of grpc-js: an http2 server whose streams are
 * forwarded over one http2 client session to the upstream (the request's headers minus
 * pseudo-headers, plus the same seven stamped entries as the grpc-js floor; the request body
 * piped; the response headers, body and trailers copied back, trailers-only answers included).
 * No gRPC library on either leg, no authentication, no limits, no logging.
 */
async function serveGrpcH2Floor(upstream) {
  const http2 = require('node:http2');
  const internalToken = `Bearer ${crypto.randomBytes(390).toString('base64url')}`;
  const principalId = crypto.randomUUID();
  const session = http2.connect(`http://${upstream}`);
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    const out = {
      ':method': 'POST',
      ':path': headers[':path'],
      ':authority': upstream,
      ':scheme': 'http',
      'content-type': headers['content-type'],
      te: 'trailers',
      authorization: internalToken,
      'x-auth-principal-id': principalId,
      'x-auth-principal-type': 'user',
      'x-request-id': crypto.randomUUID(),
      'x-correlation-id': crypto.randomUUID(),
      traceparent: `00-${crypto.randomBytes(16).toString('hex')}-${crypto.randomBytes(8).toString('hex')}-01`,
      'x-tenant-id': 'acme',
    };
    if (headers['grpc-timeout'] !== undefined) out['grpc-timeout'] = headers['grpc-timeout'];
    const up = session.request(out);
    stream.pipe(up);
    up.on('response', (response) => {
      const answer = {};
      for (const name in response) if (name[0] !== ':' || name === ':status') answer[name] = response[name];
      if (up.endAfterHeaders) {
        stream.respond(answer, { endStream: true });
        return;
      }
      let trailers = {};
      up.on('trailers', (received) => (trailers = received));
      stream.respond(answer, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers(trailers));
      up.pipe(stream);
    });
    up.on('error', () => stream.destroyed || stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
    stream.on('error', () => up.destroyed || up.close(http2.constants.NGHTTP2_CANCEL));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
}

/* ---------- upstream mTLS: throw-away certificates, a TLS projection, bare TLS clients ---------- */

/**
 * A throw-away CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl
 * in `dir` (P-256, valid 2 days): ca.pem, server.pem/.key, client.pem/.key.
 */
function makeBenchCertificates(dir) {
  const run = (...args) => {
    const result = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`openssl ${args[0]}: ${result.stderr}`);
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  run('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=bench-upstream-ca');
  fs.writeFileSync(path.join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\n');
  fs.writeFileSync(path.join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const name of ['server', 'client']) {
    run('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=bench-${name}`);
    run(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
    );
  }
  return {
    ca: path.join(dir, 'ca.pem'),
    serverCert: path.join(dir, 'server.pem'),
    serverKey: path.join(dir, 'server.key'),
    clientCert: path.join(dir, 'client.pem'),
    clientKey: path.join(dir, 'client.key'),
  };
}

/** The fake projection's WebSocket echo over TLS, requiring a client certificate the bench CA signed. */
async function serveTlsProjection(dir) {
  const https = require('node:https');
  const { WebSocketServer } = require('ws');
  const read = (name) => fs.readFileSync(path.join(dir, name));
  const server = https.createServer(
    { ca: read('ca.pem'), cert: read('server.pem'), key: read('server.key'), requestCert: true, rejectUnauthorized: true },
    (_request, response) => response.writeHead(404).end(),
  );
  const wss = new WebSocketServer({ server, perMessageDeflate: false });
  wss.on('connection', (socket) => socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary })));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
}

/**
 * The floor of a TLS upstream connection in Node: this process opens `count` bare `tls.connect`
 * client connections (one SecureContext for all, as Gatehouse builds it; client certificate
 * presented) or, with kind `tcp`, bare `net.connect` ones, to `port`, holds them idle and prints
 * its own RSS growth per connection, measured as the Gatehouse rows are (a warm-up batch of
 * 100 opened and closed first, RSS read 2 s before and 3 s after).
 */
async function holdClients(kind, port, dir, count) {
  const tls = require('node:tls');
  const read = (name) => fs.readFileSync(path.join(dir, name));
  const secureContext =
    kind === 'tls' ? tls.createSecureContext({ ca: read('ca.pem'), cert: read('client.pem'), key: read('client.key') }) : undefined;
  const open = () =>
    new Promise((resolve, reject) => {
      const socket =
        kind === 'tls'
          ? tls.connect({ host: '127.0.0.1', port, secureContext, rejectUnauthorized: true }, () => resolve(socket))
          : net.connect({ host: '127.0.0.1', port }, () => resolve(socket));
      socket.once('error', reject);
    });
  const openMany = async (n) => {
    const sockets = [];
    for (let opened = 0; opened < n; opened += 100)
      sockets.push(...(await Promise.all(Array.from({ length: Math.min(100, n - opened) }, open))));
    return sockets;
  };
  const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
  for (const socket of await openMany(100)) socket.destroy();
  await sleep(2000);
  const before = rss();
  const held = await openMany(count);
  await sleep(3000);
  const after = rss();
  process.stdout.write(JSON.stringify({ perSocket: (after - before) / count }) + '\n');
  for (const socket of held) socket.destroy();
}

/* ---------- measurement helpers ---------- */

function procStat(pid) {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = text.slice(text.lastIndexOf(') ') + 2).split(' ');
    return { ppid: Number(fields[1]), cpu: (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS };
  } catch {
    return undefined;
  }
}

/** user + system CPU seconds used so far by a process and its descendants that are still alive (Linux /proc; 0 elsewhere). */
function cpuSeconds(pid) {
  const own = procStat(pid);
  if (own === undefined) return 0;
  let total = own.cpu;
  const parents = new Set([pid]);
  let grown = true;
  const all = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = procStat(Number(entry));
    if (stat !== undefined) all.push({ pid: Number(entry), ...stat });
  }
  while (grown) {
    grown = false;
    for (const process of all) {
      if (!parents.has(process.pid) && parents.has(process.ppid)) {
        parents.add(process.pid);
        total += process.cpu;
        grown = true;
      }
    }
  }
  return total;
}

/** resident set size of a process and its live descendants, in bytes */
function rssBytes(pid) {
  const read = (p) => {
    try {
      const match = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${p}/status`, 'utf8'));
      return match ? Number(match[1]) * 1024 : 0;
    } catch {
      return 0;
    }
  };
  let total = read(pid);
  for (const entry of fs.readdirSync('/proc')) {
    if (/^\d+$/.test(entry) && procStat(Number(entry))?.ppid === pid) total += read(Number(entry));
  }
  return total;
}

function cannon(options) {
  const autocannon = require('autocannon');
  return new Promise((resolve, reject) => {
    autocannon({ duration: DURATION, connections: CONNECTIONS, ...options }, (error, result) => (error ? reject(error) : resolve(result)));
  });
}

/**
 * The least a load generator can spend per request (as autocannon does): keep-alive sockets that
 * each carry one request at a time, the request's bytes encoded once, answers read by their
 * Content-Length. `send(callback)` takes a free socket or waits for one; the callback gets the
 * status. The load generator shares the machine's cores with what it measures, so its own cost
 * matters (undici's client cost about four times as much per request here).
 */
function rawHttpClient(options, connections) {
  const url = new URL(options.url);
  const body = options.body === undefined ? undefined : Buffer.from(options.body);
  const headers = { host: url.host, ...(options.headers ?? {}) };
  if (body !== undefined) headers['content-length'] = String(body.length);
  const head = `${options.method ?? 'GET'} ${url.pathname}${url.search} HTTP/1.1\r\n${Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('')}\r\n`;
  const request = body === undefined ? Buffer.from(head, 'latin1') : Buffer.concat([Buffer.from(head, 'latin1'), body]);
  const idle = [];
  const waiting = [];
  const all = [];
  const dispatch = (socket, callback) => {
    socket.callback = callback;
    socket.write(request);
  };
  const complete = (socket, error, status) => {
    const callback = socket.callback;
    socket.callback = undefined;
    if (error === undefined) {
      const next = waiting.shift();
      if (next !== undefined) dispatch(socket, next);
      else idle.push(socket);
    }
    callback?.(error, status);
  };
  for (let i = 0; i < connections; i += 1) {
    const socket = net.connect(Number(url.port), url.hostname);
    socket.setNoDelay(true);
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      for (;;) {
        const end = pending.indexOf('\r\n\r\n');
        if (end === -1) return;
        const text = pending.toString('latin1', 0, end);
        const length = /\r\ncontent-length: *(\d+)/i.exec(text);
        if (length === null) {
          socket.destroy(new Error('answer without content-length'));
          return;
        }
        const size = end + 4 + Number(length[1]);
        if (pending.length < size) return;
        pending = pending.subarray(size);
        complete(socket, undefined, Number(text.slice(9, 12)));
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      const at = idle.indexOf(socket);
      if (at !== -1) idle.splice(at, 1);
      if (socket.callback !== undefined) complete(socket, new Error('connection closed'));
    });
    all.push(socket);
    idle.push(socket);
  }
  return {
    send(callback) {
      const socket = idle.pop();
      if (socket === undefined) waiting.push(callback);
      else dispatch(socket, callback);
    },
    close() {
      for (const socket of all) socket.destroy();
      for (const callback of waiting.splice(0)) callback(new Error('client closed'));
    },
  };
}

/**
 * An open-loop load at an even `rate` per second for `seconds` (rawHttpClient, BENCH_PACED_CONNECTIONS
 * keep-alive connections, 32 by default): request i is due at start + i/rate and sent when due, whatever
 * the earlier ones are doing. Latency is counted from the moment a request was due (so a stall
 * anywhere, the load generator's included, counts, as wrk2 counts it) and, separately, from the
 * moment it was sent. Unlike autocannon's `overallRate`, which lets each connection send its
 * per-second quota back to back at the start of every second (a half-saturation run is then
 * saturated half of each second) and adds, for a response of L ms, L − 1 synthetic samples of
 * L − 1 … 1 ms to its histogram (coordinated-omission correction with a 1 ms expected interval),
 * every sample here is a real request.
 */
async function pacedRun(pid, options, rate, seconds, gcFile) {
  const client = rawHttpClient(options, Number(process.env.BENCH_PACED_CONNECTIONS ?? 32));
  const once = () => new Promise((resolve, reject) => client.send((error, status) => (error ? reject(error) : resolve(status))));
  // warm-up: connections open, JIT
  await Promise.all(Array.from({ length: 64 }, once));
  const closeGc = await openGcWindow(pid, gcFile);
  const cpuBefore = pid === undefined ? 0 : cpuSeconds(pid);
  const sched = schedSampler(pid);
  const total = Math.round(rate * seconds);
  const fromDue = new Float64Array(total);
  const fromSent = new Float64Array(total);
  let sent = 0;
  let done = 0;
  let bad = 0;
  const start = performance.now();
  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      const due = Math.min(total, Math.floor(((now - start) * rate) / 1000) + 1);
      for (; sent < due; sent += 1) {
        const index = sent;
        const dueAt = start + (index * 1000) / rate;
        const sentAt = performance.now();
        once().then(
          (status) => {
            const end = performance.now();
            fromDue[index] = end - dueAt;
            fromSent[index] = end - sentAt;
            if (status >= 300) bad += 1;
            if ((done += 1) === total) resolve();
          },
          () => {
            bad += 1;
            fromDue[index] = fromSent[index] = Number.NaN;
            if ((done += 1) === total) resolve();
          },
        );
      }
      if (sent < total) setTimeout(tick, 0);
    };
    tick();
  });
  const elapsed = (performance.now() - start) / 1000;
  const waits = sched.stop();
  if (process.env.BENCH_PACED_DUMP)
    fs.writeFileSync(
      `${process.env.BENCH_PACED_DUMP}-${pid ?? 'direct'}-${Date.now()}.json`,
      JSON.stringify({ wallStart: performance.timeOrigin + start, rate, fromDue: Array.from(fromDue), fromSent: Array.from(fromSent) }),
    );
  const cpu = pid === undefined ? 0 : cpuSeconds(pid) - cpuBefore;
  const gc = gcPerRequest(await closeGc(), total);
  client.close();
  const sorted = (values) =>
    Array.from(values)
      .filter((value) => !Number.isNaN(value))
      .sort((a, b) => a - b);
  const due = sorted(fromDue);
  const wire = sorted(fromSent);
  return {
    rate: total / elapsed,
    p50: percentile(due, 50),
    p99: percentile(due, 99),
    p999: percentile(due, 99.9),
    sentP50: percentile(wire, 50),
    sentP99: percentile(wire, 99),
    sentP999: percentile(wire, 99.9),
    count: total,
    cpuPerOp: pid === undefined ? undefined : (cpu / total) * 1e6,
    bad,
    gc,
    waits,
  };
}

/** ticks the machine's CPUs were stolen by the hypervisor so far (/proc/stat, field 8 of the cpu line) */
function stealTicks() {
  try {
    return Number(fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/)[8]);
  } catch {
    return 0;
  }
}

/** nanoseconds the threads of `pid` (only its main thread with `mainOnly`) have waited on a run queue so far (/proc/<pid>/task/<tid>/schedstat, field 2) */
function runQueueNanos(pid, mainOnly = false) {
  let total = 0;
  try {
    for (const tid of mainOnly ? [String(pid)] : fs.readdirSync(`/proc/${pid}/task`)) {
      try {
        total += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[1]);
      } catch {
        // a thread that ended
      }
    }
  } catch {
    // a process that ended
  }
  return total;
}

/**
 * Samples, every 10 ms while a paced run lasts, the CPU time the hypervisor stole from this machine
 * and the run-queue wait of the measured process's main thread and of the load generator's threads: what a
 * request waited for that was nobody's code. `stop()` gives each as ms per second of run and its
 * worst 100 ms window (ms of waiting in it), to tell a slow round of Gatehouse from a slow machine.
 */
function schedSampler(pid) {
  const samples = [];
  const sample = () =>
    samples.push({
      at: performance.now(),
      steal: (stealTicks() * 1000) / CLOCK_TICKS,
      target: pid === undefined ? 0 : runQueueNanos(pid, true) / 1e6,
      own: runQueueNanos(process.pid) / 1e6,
    });
  sample();
  const timer = setInterval(sample, 10);
  return {
    stop() {
      clearInterval(timer);
      sample();
      const first = samples[0];
      const last = samples.at(-1);
      const seconds = (last.at - first.at) / 1000;
      const worst = (key) => {
        let max = 0;
        for (let i = 0, j = 0; i < samples.length; i += 1) {
          while (samples[i].at - samples[j].at > 100) j += 1;
          max = Math.max(max, samples[i][key] - samples[j][key]);
        }
        return max;
      };
      const summary = (key) => ({ perSecond: (last[key] - first[key]) / seconds, worst100ms: worst(key) });
      return { steal: summary('steal'), target: summary('target'), own: summary('own') };
    },
  };
}

/** A full collection in process `pid` (started with scripts/gc-probe.js writing to `file`); false without the probe. */
async function fullCollection(pid, file) {
  if (!GC_PROBE || file === undefined) return false;
  fs.rmSync(`${file}.full`, { force: true });
  process.kill(pid, 'SIGWINCH');
  for (let i = 0; i < 250; i += 1) {
    await sleep(20);
    if (fs.existsSync(`${file}.full`)) {
      await sleep(200);
      return true;
    }
  }
  return false;
}

/**
 * Opens a GC window in process `pid` (started with scripts/gc-probe.js writing to `file`); the
 * function returned closes it and resolves the probe's summary (undefined without the probe).
 */
async function openGcWindow(pid, file) {
  if (!GC_PROBE || pid === undefined || file === undefined) return async () => undefined;
  fs.rmSync(file, { force: true });
  process.kill(pid, 'SIGUSR2');
  await sleep(20);
  return async () => {
    process.kill(pid, 'SIGUSR2');
    for (let i = 0; i < 250; i += 1) {
      await sleep(20);
      try {
        return JSON.parse(fs.readFileSync(file, 'utf8'));
      } catch {
        /* not written (whole) yet */
      }
    }
    return undefined;
  };
}

/** BENCH_HEAP_PROFILE_DIR: the GC windows also sample allocation sites, one .heapprofile per process there. */
function heapProfileEnv(name) {
  const dir = process.env.BENCH_HEAP_PROFILE_DIR;
  if (dir === undefined) return {};
  const live = process.env.GC_PROBE_HEAP_LIVE === undefined ? {} : { GC_PROBE_HEAP_LIVE: process.env.GC_PROBE_HEAP_LIVE };
  return { GC_PROBE_HEAP_PROFILE: path.join(dir, `${name.replace(/^-+/, '')}.heapprofile`), ...live };
}

/** Allocation and collections per request of a GC window over `requests` requests. */
function gcPerRequest(window, requests) {
  if (window === undefined || requests === 0) return undefined;
  const minor = window.collections.filter((c) => c.type === 'Scavenge' || c.type === 'MinorMarkSweep');
  const major = window.collections.filter((c) => c.type === 'MarkSweepCompact');
  const pauses = minor.map((c) => c.pauseMs).sort((a, b) => a - b);
  const sum = (values) => values.reduce((total, value) => total + value, 0);
  return {
    bytesPerRequest: window.allocated / requests,
    promotedPerRequest: sum(minor.map((c) => c.promoted)) / requests,
    minorPer10k: (minor.length / requests) * 1e4,
    minorP50: pauses.length === 0 ? undefined : percentile(pauses, 50),
    minorP99: pauses.length === 0 ? undefined : percentile(pauses, 99),
    minorMax: pauses.at(-1) ?? 0,
    majors: major.length,
    majorMax: Math.max(0, ...major.map((c) => c.pauseMs)),
    pauseMsPerSecond: sum(window.collections.map((c) => c.pauseMs)) / window.seconds,
    newSpaceMiB: Math.max(0, ...window.collections.map((c) => c.newSpaceBytes)) / 1048576,
    rssMiB: window.rssBytes / 1048576,
  };
}

function gcLine(label, gc) {
  if (gc === undefined) return;
  note(
    `GC ${label}: ${(gc.bytesPerRequest / 1024).toFixed(2)} KiB allocated/request, ${gc.minorPer10k.toFixed(1)} scavenges per 10k requests ` +
      `(pause p50 ${gc.minorP50?.toFixed(2) ?? '-'} / p99 ${gc.minorP99?.toFixed(2) ?? '-'} / max ${gc.minorMax.toFixed(2)} ms), ` +
      `promoted ${gc.promotedPerRequest.toFixed(0)} B/request, ${gc.majors} mark-compacts (max ${gc.majorMax.toFixed(1)} ms), ` +
      `GC pauses ${gc.pauseMsPerSecond.toFixed(1)} ms/s, new space ${gc.newSpaceMiB.toFixed(0)} MiB, RSS ${gc.rssMiB.toFixed(0)} MiB`,
  );
}

/** An autocannon run with the CPU seconds `pid` (and its children) spent meanwhile (and its GC, with `gcFile`). */
async function measuredCannon(pid, options, gcFile) {
  await cannon({ ...options, duration: 1 }); // warm-up: JIT, pools, caches
  const closeGc = await openGcWindow(pid, gcFile);
  const before = pid === undefined ? 0 : cpuSeconds(pid);
  const result = await cannon(options);
  const cpu = pid === undefined ? 0 : cpuSeconds(pid) - before;
  const gc = gcPerRequest(await closeGc(), result.requests.total);
  return {
    gc,
    rate: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    count: result.requests.total,
    cpuPerOp: pid === undefined || result.requests.total === 0 ? undefined : (cpu / result.requests.total) * 1e6,
    bad: result.non2xx + result.errors,
  };
}

/**
 * The same autocannon runs as `measuredCannon`, in ROUNDS interleaved rounds (A B C D A B C D …):
 * a burst of load from the other tenants of the machine then lands on every target alike.
 * Rates and CPU are summed over the rounds; p50 is the median of the rounds', p99 the worst.
 */
async function interleaved(targets) {
  const rounds = Math.max(1, ROUNDS);
  const duration = Math.max(2, Math.round(DURATION / rounds));
  const totals = targets.map(() => ({ count: 0, seconds: 0, cpu: 0, p50s: [], p99: 0, bad: 0 }));
  for (const target of targets) await cannon({ ...target.options, duration: 1 }); // warm-up
  for (let round = 0; round < rounds; round += 1) {
    for (const [index, target] of targets.entries()) {
      const before = target.pid === undefined ? 0 : cpuSeconds(target.pid);
      const result = await cannon({ ...target.options, duration });
      const total = totals[index];
      total.cpu += target.pid === undefined ? 0 : cpuSeconds(target.pid) - before;
      total.count += result.requests.total;
      total.seconds += result.duration;
      total.p50s.push(result.latency.p50);
      total.p99 = Math.max(total.p99, result.latency.p99);
      total.bad += result.non2xx + result.errors;
    }
  }
  return totals.map((total, index) => ({
    rate: total.count / total.seconds,
    p50: total.p50s.sort((a, b) => a - b)[Math.floor(total.p50s.length / 2)],
    p99: total.p99,
    count: total.count,
    cpuPerOp: targets[index].pid === undefined || total.count === 0 ? undefined : (total.cpu / total.count) * 1e6,
    bad: total.bad,
  }));
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Runs `workers` loops of `once()` for DURATION seconds; returns ops/s, latency percentiles (ms) and CPU µs per op of `pid`. */
async function loops(workers, once, pid, opsPerLoop = 1, duration = DURATION) {
  const latencies = [];
  let errors = 0;
  const deadline = Date.now() + duration * 1000;
  const cpuBefore = pid === undefined ? 0 : cpuSeconds(pid);
  const started = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async (_, worker) => {
      while (Date.now() < deadline) {
        const t0 = performance.now();
        try {
          await once(worker);
          latencies.push(performance.now() - t0);
        } catch {
          errors += 1;
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const cpu = pid === undefined ? 0 : cpuSeconds(pid) - cpuBefore;
  latencies.sort((a, b) => a - b);
  return {
    rate: latencies.length / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    count: latencies.length,
    cpuPerOp: pid === undefined || latencies.length === 0 ? undefined : (cpu / (latencies.length * opsPerLoop)) * 1e6,
    bad: errors,
    seconds,
    cpu,
  };
}

/**
 * `loops` over several targets in ROUNDS interleaved rounds (A B C, then C B A, …), so a burst of
 * load from the machine's other tenants lands on every target alike; counts, seconds and CPU
 * summed. Every target first runs WARM_SECONDS unmeasured: without it the first target's first
 * round also paid the load generator's and its own JIT warm-up (and whatever the processes just
 * started were still doing), which the later targets did not.
 */
async function interleavedLoops(allTargets, workers) {
  // an undefined target (an optional one not run) keeps its place in the results as undefined
  const targets = allTargets.filter((target) => target !== undefined);
  const results = await interleavedLoopsOf(targets, workers);
  return allTargets.map((target) => (target === undefined ? undefined : results[targets.indexOf(target)]));
}

async function interleavedLoopsOf(targets, workers) {
  const rounds = Math.max(1, ROUNDS);
  const seconds = Math.max(2, Math.round(DURATION / rounds));
  const totals = targets.map(() => ({ count: 0, seconds: 0, cpu: 0, allCpu: 0, p50s: [], p99: 0, bad: 0 }));
  // CPU of every process taking part (target.allPids, plus this process: the load generator)
  const everyone = (target) =>
    (target.allPids ?? []).reduce((sum, pid) => sum + cpuSeconds(pid), 0) + process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6;
  if (WARM_SECONDS > 0) for (const target of targets) await loops(workers, target.once, undefined, 1, WARM_SECONDS);
  for (let round = 0; round < rounds; round += 1) {
    const order = [...targets.keys()];
    if (round % 2 === 1) order.reverse();
    for (const index of order) {
      const target = targets[index];
      const allBefore = target.allPids === undefined ? 0 : everyone(target);
      const result = await loops(workers, target.once, target.pid, target.opsPerLoop ?? 1, seconds);
      // BENCH_ROUND_DETAIL=1: every round's rate and CPU per op of each target (for A/B pairs round by round)
      if (process.env.BENCH_ROUND_DETAIL === '1' && target.label !== undefined && result.seconds > 0) {
        const perOp = target.pid === undefined || result.count === 0 ? '-' : ((result.cpu / result.count) * 1e6).toFixed(1);
        console.log(
          `    round ${round + 1} ${target.label.padEnd(16)} ${(result.count / result.seconds).toFixed(0).padStart(6)}/s  CPU ${perOp} µs/op`,
        );
      }
      const total = totals[index];
      if (target.allPids !== undefined) total.allCpu += everyone(target) - allBefore;
      total.count += result.count;
      total.seconds += result.seconds;
      total.cpu += result.cpu;
      total.p50s.push(result.p50);
      total.p99 = Math.max(total.p99, result.p99);
      total.bad += result.bad;
    }
  }
  return totals.map((total, index) => ({
    rate: total.count / total.seconds,
    p50: total.p50s.sort((a, b) => a - b)[Math.floor(total.p50s.length / 2)],
    p99: total.p99,
    count: total.count,
    cpuPerOp:
      targets[index].pid === undefined || total.count === 0
        ? undefined
        : (total.cpu / (total.count * (targets[index].opsPerLoop ?? 1))) * 1e6,
    // with allPids: cores kept busy by the load generator and every process on the path
    coresBusy: targets[index].allPids === undefined ? undefined : total.allCpu / total.seconds,
    allCpuPerOp:
      targets[index].allPids === undefined || total.count === 0
        ? undefined
        : (total.allCpu / (total.count * (targets[index].opsPerLoop ?? 1))) * 1e6,
    bad: total.bad,
  }));
}

/* ---------- report ---------- */

const report = [];
function section(title) {
  report.push({ title, rows: [], ratios: [] });
  console.log(`\n${title}`);
}
function row(label, result, unit = '/s') {
  const current = report.at(-1);
  current.rows.push({ label, ...result, unit });
  const cpu = result.cpuPerOp === undefined ? '' : `   CPU ${result.cpuPerOp.toFixed(0).padStart(5)} µs/op`;
  console.log(
    `  ${label.padEnd(46)} ${result.rate.toFixed(0).padStart(7)} ${unit}   p50 ${result.p50.toFixed(2).padStart(6)} ms   p99 ${result.p99
      .toFixed(2)
      .padStart(6)} ms${cpu}${result.bad ? `   failed ${result.bad}` : ''}`,
  );
}
function ratio(label, value, goal) {
  report.at(-1).ratios.push({ label, value, goal });
  console.log(`  ${label.padEnd(46)} ${Number.isFinite(value) ? value.toFixed(2) : 'n/a'}${goal ? `   (goal ${goal})` : ''}`);
}
function note(text) {
  report.at(-1).ratios.push({ label: text });
  console.log(`  ${text}`);
}

/** the whole run as one markdown table, to paste into a closing note */
function printSummary() {
  console.log('\n| section | path | rate | p50 ms | p99 ms | CPU µs/op |\n|---|---|---|---|---|---|');
  for (const { title, rows } of report) {
    for (const r of rows) {
      console.log(
        `| ${title} | ${r.label} | ${r.rate.toFixed(0)} ${r.unit} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.cpuPerOp === undefined ? '' : r.cpuPerOp.toFixed(0)} |`,
      );
    }
  }
  console.log('\n| ratio | value | goal |\n|---|---|---|');
  for (const { ratios } of report) {
    for (const r of ratios) {
      if (r.value === undefined) console.log(`| ${r.label} | | |`);
      else console.log(`| ${r.label} | ${Number.isFinite(r.value) ? r.value.toFixed(2) : 'n/a'} | ${r.goal ?? ''} |`);
    }
  }
}

/* ---------- processes under test ---------- */

function nginxBinary() {
  const which = spawnSync('sh', ['-c', 'command -v nginx || ls /usr/sbin/nginx'], { encoding: 'utf8' });
  const binary = which.stdout.trim().split('\n')[0];
  return which.status === 0 && binary ? binary : undefined;
}

async function startNginx(upstreamPort) {
  const binary = nginxBinary();
  if (binary === undefined) return undefined;
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-bench-nginx-'));
  // one process (no master), so its CPU time is one /proc entry
  const conf = `
master_process off;
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream projection { server 127.0.0.1:${upstreamPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://projection;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}`;
  fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
  const child = spawn(binary, ['-c', path.join(dir, 'nginx.conf'), '-p', dir], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (await waitForPort(port)) return { port, child };
  child.kill('SIGKILL');
  return undefined;
}

/** A child process of this script that prints one JSON line once it listens. */
async function helperProcess(args, gcFile, nodeArgs = []) {
  const probe = GC_PROBE && gcFile !== undefined;
  const child = spawn(process.execPath, [...nodeArgs, ...(probe ? ['--require', GC_PROBE_SCRIPT] : []), __filename, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: probe ? { ...process.env, GC_PROBE_FILE: gcFile, ...heapProfileEnv(args[0]) } : process.env,
  });
  const info = await new Promise((resolve, reject) => {
    child.stdout.once('data', (chunk) => resolve(JSON.parse(chunk.toString())));
    child.once('exit', () => reject(new Error(`${args[0]} process exited`)));
  });
  return { child, info, gcFile };
}

/** CPU µs of one admission through the tenant, principal and in-flight scopes (limits high), measured in this process. */
async function admissionCpuMicros() {
  const { guard, input } = admissionBench();
  const calls = 200_000;
  let best = Infinity;
  for (let round = 0; round < 3; round += 1) {
    const before = process.cpuUsage();
    for (let i = 0; i < calls; i += 1) (await guard.admit(input, undefined)).release();
    const used = process.cpuUsage(before);
    best = Math.min(best, (used.user + used.system) / calls);
  }
  return best;
}

async function natsReachable() {
  try {
    const { hostname, port } = new URL(NATS_URL);
    return await new Promise((resolve) => {
      const socket = net.connect(Number(port || 4222), hostname);
      socket.setTimeout(1000, () => {
        socket.destroy();
        resolve(false);
      });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
  } catch {
    return false;
  }
}

async function main() {
  const pg = require('pg');
  const grpc = require('@grpc/grpc-js');
  const protoLoader = require('@grpc/proto-loader');
  const WebSocket = require('ws');
  const children = [];
  const cleanups = [];
  const only = (process.env.BENCH_ONLY ?? '').split(',').filter(Boolean);
  const runs = (name) => only.length === 0 || only.includes(name);
  try {
    // the fake upstreams in their own process, so they do not share the event loop with the load generator
    const upstreams = await helperProcess(['--serve-upstreams']);
    children.push(upstreams.child);
    const ports = upstreams.info;
    const projection = `127.0.0.1:${ports.httpPort}`;
    const aggregate = `127.0.0.1:${ports.grpcPort}`;

    const admin = new pg.Client({ connectionString: PG_ADMIN });
    await admin.connect();
    cleanups.push(() => admin.end());
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-bench-proxy-'));
    const routing = {
      aggregate: { placement: { acme: 'a1' }, shards: { a1: [aggregate] } },
      projection: { placement: { acme: 'p1' }, shards: { p1: [projection] } },
    };
    const routingFile = path.join(dataDir, 'routing.json');
    fs.writeFileSync(routingFile, JSON.stringify(routing));
    const adminEmail = 'bench-admin@example.com';
    const adminPassword = 'bench admin password 12345';

    /** Starts one Gatehouse (its own database) and signs the bootstrap admin in. */
    const startGatehouse = async (extraEnv = {}, { nodeArgs: moreNodeArgs = [], dist = path.join(ROOT, 'dist') } = {}) => {
      const database = `bench_proxy_${crypto.randomBytes(4).toString('hex')}`;
      await admin.query(`CREATE DATABASE ${database}`);
      cleanups.push(() => admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`));
      const dbUrl = new URL(PG_ADMIN);
      dbUrl.pathname = `/${database}`;
      const port = await freePort();
      const grpcPort = await freePort();
      const nodeArgs = [
        ...productionNodeArgs(),
        ...(process.env.BENCH_GATEHOUSE_NODE_ARGS ?? '').split(' ').filter(Boolean),
        ...moreNodeArgs,
      ];
      const gcFile = path.join(dataDir, `gc-${database}.json`);
      if (GC_PROBE) nodeArgs.push('--require', GC_PROBE_SCRIPT);
      const child = spawn(process.execPath, [...nodeArgs, path.join(dist, 'main.js')], {
        env: {
          PATH: process.env.PATH,
          ...(GC_PROBE ? { GC_PROBE_FILE: gcFile, ...heapProfileEnv(`gatehouse-${database}`) } : {}),
          NODE_ENV: 'production',
          MASTER_KEY: crypto.randomBytes(32).toString('base64'),
          PORT: String(port),
          GRPC_PORT: String(grpcPort),
          DATABASE_URL: dbUrl.toString(),
          DATA_DIR: dataDir,
          ROUTING_FILE: routingFile,
          BOOTSTRAP_ADMIN_EMAIL: adminEmail,
          BOOTSTRAP_ADMIN_PASSWORD: adminPassword,
          // production log level: one JSON line per request, written (here to /dev/null)
          LOG_LEVEL: 'info',
          WORKERS: '1',
          // limits on but high, so their cost counts without refusing the benchmark's traffic
          TENANT_RATE_LIMIT: '100000000/60s',
          PRINCIPAL_RATE_LIMIT: '100000000/60s',
          IP_IN_FLIGHT_LIMIT: '100000',
          WS_MESSAGE_RATE_LIMIT: '1000000/1s',
          WS_MAX_CONNECTIONS_PER_PRINCIPAL: String(IDLE_SOCKETS * RSS_BATCHES + 1000),
          ...extraEnv,
        },
        stdio: [
          'ignore',
          process.env.BENCH_GATEHOUSE_LOG ? fs.openSync(`${process.env.BENCH_GATEHOUSE_LOG}-${database}.log`, 'w') : 'ignore',
          'inherit',
        ],
      });
      children.push(child);
      const base = `http://127.0.0.1:${port}`;
      for (let i = 0; ; i += 1) {
        try {
          if ((await fetch(`${base}/ready`)).status === 200) break;
        } catch {
          /* starting */
        }
        if (child.exitCode !== null) throw new Error(`gatehouse exited with ${child.exitCode}`);
        if (i > 600) throw new Error('gatehouse did not become ready');
        await sleep(100);
      }
      const signin = await fetch(`${base}/v1/auth/signin`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: adminEmail, password: adminPassword }),
      }).then((response) => response.json());
      const token = signin.access_token;
      if (!token) throw new Error('bench sign-in failed');
      return { child, pid: child.pid, base, port, grpcPort, token, gcFile };
    };

    const gatehouse = await startGatehouse();
    const { token, base, port, grpcPort } = gatehouse;

    console.log(
      `Gatehouse proxy bench — ${os.cpus().length} cores, load average ${os
        .loadavg()
        .map((n) => n.toFixed(1))
        .join(' ')}, ${DURATION}s per run, ${CONNECTIONS} HTTP connections, one fake upstream process`,
    );

    const queryOptions = { method: 'POST', body: QUERY_BODY, headers: { 'content-type': 'application/json' } };
    const gatehouseQuery = (target) => ({
      ...queryOptions,
      url: `${target.base}/v1/query/orders`,
      headers: { ...queryOptions.headers, authorization: `Bearer ${target.token}`, 'x-tenant-id': 'acme' },
    });

    // ---- HTTP query: Gatehouse vs the floor proxy vs nginx vs direct ----
    if (runs('http')) {
      section(`POST /v1/query (${CONNECTIONS} connections, ${ROUNDS} interleaved rounds)`);
      const floor = await helperProcess(['--serve-floor', `http://${projection}`], path.join(dataDir, 'gc-floor.json'));
      children.push(floor.child);
      const nginx = await startNginx(ports.httpPort);
      if (nginx !== undefined) children.push(nginx.child);
      const targets = [
        { pid: gatehouse.pid, options: gatehouseQuery(gatehouse) },
        { pid: floor.child.pid, options: { ...queryOptions, url: `http://127.0.0.1:${floor.info.port}/v1/query/orders` } },
        { pid: upstreams.child.pid, options: { ...queryOptions, url: `http://${projection}/v1/query/orders` } },
      ];
      if (nginx !== undefined) {
        targets.push({ pid: nginx.child.pid, options: { ...queryOptions, url: `http://127.0.0.1:${nginx.port}/v1/query/orders` } });
      }
      const [via, viaFloor, direct, viaNginx] = await interleaved(targets);
      row('via Gatehouse (authn+authz+limits, log info)', via);
      row('via floor proxy (bare Fastify + undici)', viaFloor);
      if (viaNginx) row('via nginx proxy_pass (1 process)', viaNginx);
      else note('nginx not installed (apt-get install -y nginx): its row is skipped');
      row('direct to upstream (CPU = the upstream)', direct);
      ratio('CPU/request Gatehouse / floor', via.cpuPerOp / viaFloor.cpuPerOp, '≤ 1.3');
      ratio('req/s Gatehouse / floor', via.rate / viaFloor.rate);
      if (viaNginx) ratio('req/s Gatehouse / nginx', via.rate / viaNginx.rate);
      if (viaNginx) ratio('req/s floor / nginx', viaFloor.rate / viaNginx.rate);
      ratio('req/s Gatehouse / direct', via.rate / direct.rate);

      // latency added at half of Gatehouse's saturation throughput
      const halfRate = Math.max(1, Math.round(via.rate / 2));
      const paced = { connections: CONNECTIONS, overallRate: halfRate };
      const viaHalf = await measuredCannon(gatehouse.pid, { ...gatehouseQuery(gatehouse), ...paced }, gatehouse.gcFile);
      const directHalf = await measuredCannon(undefined, { ...queryOptions, url: `http://${projection}/v1/query/orders`, ...paced });
      // the floor proxy at the same rate: what any Node proxy adds on these shared cores
      const floorHalf = await measuredCannon(
        floor.child.pid,
        {
          ...queryOptions,
          url: `http://127.0.0.1:${floor.info.port}/v1/query/orders`,
          ...paced,
        },
        floor.gcFile,
      );
      row(`via Gatehouse at ${halfRate}/s (half saturation)`, viaHalf);
      row(`via floor proxy at ${halfRate}/s`, floorHalf);
      row(`direct at ${halfRate}/s`, directHalf);
      ratio('p99 added by Gatehouse at half saturation (ms)', viaHalf.p99 - directHalf.p99, '≤ 2');
      ratio('p99 added by the floor proxy at the same rate (ms)', floorHalf.p99 - directHalf.p99);
      gcLine('via Gatehouse at half saturation', viaHalf.gc);
      gcLine('via floor proxy at the same rate', floorHalf.gc);

      // the same rate sent evenly (pacedRun): each target BENCH_ROUNDS times, interleaved; p99 of each run
      const pacedSeconds = Number(process.env.BENCH_PACED_SECONDS ?? 5);
      const pacedTargets = [
        { label: 'Gatehouse', pid: gatehouse.pid, gcFile: gatehouse.gcFile, options: gatehouseQuery(gatehouse) },
        {
          label: 'floor',
          pid: floor.child.pid,
          gcFile: floor.gcFile,
          options: { ...queryOptions, url: `http://127.0.0.1:${floor.info.port}/v1/query/orders` },
        },
        { label: 'direct', pid: undefined, options: { ...queryOptions, url: `http://${projection}/v1/query/orders` } },
      ];
      const pacedResults = new Map(pacedTargets.map((target) => [target.label, []]));
      for (let round = 0; round < Math.max(1, ROUNDS); round += 1) {
        for (const target of pacedTargets) {
          pacedResults.get(target.label).push(await pacedRun(target.pid, target.options, halfRate, pacedSeconds, target.gcFile));
        }
      }
      const medianOf = (values) => {
        const sorted = [...values].sort((x, y) => x - y);
        const middle = Math.floor(sorted.length / 2);
        return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
      };
      const pacedRow = (label) => {
        const results = pacedResults.get(label);
        return {
          rate: medianOf(results.map((r) => r.rate)),
          p50: medianOf(results.map((r) => r.p50)),
          p99: medianOf(results.map((r) => r.p99)),
          cpuPerOp: results[0].cpuPerOp === undefined ? undefined : medianOf(results.map((r) => r.cpuPerOp)),
          bad: results.reduce((sum, r) => sum + r.bad, 0),
          results,
        };
      };
      const pacedVia = pacedRow('Gatehouse');
      const pacedFloor = pacedRow('floor');
      const pacedDirect = pacedRow('direct');
      row(`via Gatehouse at ${halfRate}/s evenly paced (median of ${ROUNDS})`, pacedVia);
      row(`via floor proxy at ${halfRate}/s evenly paced`, pacedFloor);
      row(`direct at ${halfRate}/s evenly paced`, pacedDirect);
      const added = (a, b) => a.results.map((r, i) => r.p99 - b.results[i].p99);
      const gatehouseAdded = added(pacedVia, pacedDirect);
      const floorAdded = added(pacedFloor, pacedDirect);
      ratio('p99 added by Gatehouse at half saturation, evenly paced (ms, median of rounds)', medianOf(gatehouseAdded), '≤ 2');
      note(`  rounds: ${gatehouseAdded.map((v) => v.toFixed(2)).join(', ')}`);
      const gatehouseAddedSent = pacedVia.results.map((r, i) => r.sentP99 - pacedDirect.results[i].sentP99);
      ratio('p99 added by Gatehouse, evenly paced, counted from the send (ms, median of rounds)', medianOf(gatehouseAddedSent), '≤ 2');
      note(`  rounds: ${gatehouseAddedSent.map((v) => v.toFixed(2)).join(', ')} (the load generator's own lag left out)`);
      ratio('p99 added by the floor proxy, evenly paced (ms, median of rounds)', medianOf(floorAdded));
      note(`  rounds: ${floorAdded.map((v) => v.toFixed(2)).join(', ')}`);
      note(
        `  p99.9 Gatehouse / floor / direct (ms, median): ${[pacedVia, pacedFloor, pacedDirect]
          .map((r) => medianOf(r.results.map((x) => x.p999)).toFixed(2))
          .join(' / ')}; p99 from send (not due) ${[pacedVia, pacedFloor, pacedDirect]
          .map((r) => medianOf(r.results.map((x) => x.sentP99)).toFixed(2))
          .join(' / ')}`,
      );
      const waitText = (w, key) => `${w[key].perSecond.toFixed(1)} ms/s (worst 100 ms: ${w[key].worst100ms.toFixed(1)})`;
      for (const [label, results] of pacedResults) {
        note(
          `  waits per round, ${label}: ${results
            .map(
              (r) =>
                `p99 ${r.p99.toFixed(1)} ms: steal ${waitText(r.waits, 'steal')}, its main thread's run queue ${waitText(r.waits, 'target')}, load generator run queue ${waitText(r.waits, 'own')}`,
            )
            .join('; ')}`,
        );
      }
      gcLine('via Gatehouse evenly paced (last round)', pacedVia.results.at(-1).gc);
      gcLine('via floor proxy evenly paced (last round)', pacedFloor.results.at(-1).gc);
    }

    // ---- allocation and GC per proxied request at a fixed rate; A/B pairs of builds or node flags ----
    if (only.includes('gc') && GC_PROBE) {
      const bArgs = (process.env.BENCH_GC_B_NODE_ARGS ?? '').split(' ').filter(Boolean);
      const bDist = process.env.BENCH_GC_B_DIST;
      const bEnv = JSON.parse(process.env.BENCH_GC_B_ENV ?? '{}');
      const hasB = bArgs.length > 0 || bDist !== undefined || Object.keys(bEnv).length > 0;
      section(
        `POST /v1/query at ${GC_RATE}/s: allocation and GC per request (${GC_ROUNDS} rounds of ${GC_SECONDS}s${
          hasB
            ? `; A = this build, B = ${[bDist, ...bArgs, ...Object.entries(bEnv).map(([k, v]) => `${k}=${v}`)].filter(Boolean).join(' ')}`
            : ''
        })`,
      );
      const gcFloor = await helperProcess(['--serve-floor', `http://${projection}`], path.join(dataDir, 'gc-floor-paced.json'));
      children.push(gcFloor.child);
      const other = hasB ? await startGatehouse(bEnv, { nodeArgs: bArgs, dist: bDist ?? path.join(ROOT, 'dist') }) : undefined;
      const targets = [
        { label: 'A', pid: gatehouse.pid, gcFile: gatehouse.gcFile, options: gatehouseQuery(gatehouse) },
        ...(other ? [{ label: 'B', pid: other.pid, gcFile: other.gcFile, options: gatehouseQuery(other) }] : []),
        {
          label: 'floor',
          pid: gcFloor.child.pid,
          gcFile: gcFloor.gcFile,
          options: { ...queryOptions, url: `http://127.0.0.1:${gcFloor.info.port}/v1/query/orders` },
        },
        { label: 'direct', pid: undefined, gcFile: undefined, options: { ...queryOptions, url: `http://${projection}/v1/query/orders` } },
      ];
      for (const target of targets) await cannon({ ...target.options, duration: 2 }); // warm-up
      const results = new Map(targets.map((target) => [target.label, []]));
      for (let round = 0; round < GC_ROUNDS; round += 1) {
        const order = round % 2 === 0 ? targets : [...targets].reverse();
        for (const target of order) {
          const run = await pacedRun(target.pid, target.options, GC_RATE, GC_SECONDS, target.gcFile);
          const { gc } = run;
          results.get(target.label).push(run);
          const head = `    round ${round + 1} ${target.label.padEnd(6)} ${run.count} requests  p99 ${run.p99.toFixed(2)} (from send ${run.sentP99.toFixed(2)}) p99.9 ${run.p999.toFixed(1)} ms  steal ${run.waits.steal.perSecond.toFixed(0)} ms/s (worst 100 ms ${run.waits.steal.worst100ms.toFixed(0)})  run queue: main ${run.waits.target.perSecond.toFixed(0)} ms/s (worst 100 ms ${run.waits.target.worst100ms.toFixed(0)}), load generator ${run.waits.own.perSecond.toFixed(0)} (${run.waits.own.worst100ms.toFixed(0)})`;
          if (gc === undefined) {
            console.log(head);
            continue;
          }
          console.log(
            `${head}  CPU ${run.cpuPerOp.toFixed(0)} µs/req  ` +
              `${(gc.bytesPerRequest / 1024).toFixed(2)} KiB/req  ${gc.minorPer10k.toFixed(1)} scavenges/10k  ` +
              `scavenge p50 ${gc.minorP50?.toFixed(2) ?? '-'} max ${gc.minorMax.toFixed(2)} ms  promoted ${gc.promotedPerRequest.toFixed(0)} B/req  ` +
              `majors ${gc.majors}  new space ${gc.newSpaceMiB.toFixed(0)} MiB  RSS ${gc.rssMiB.toFixed(0)} MiB`,
          );
        }
      }
      const median = (values) => {
        const sorted = [...values].sort((x, y) => x - y);
        const middle = Math.floor(sorted.length / 2);
        return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
      };
      for (const [label, runsOf] of results) {
        if (runsOf[0].gc === undefined) {
          note(
            `${label}: median of ${runsOf.length}: p99 ${median(runsOf.map((r) => r.p99)).toFixed(2)} ms (worst ${Math.max(...runsOf.map((r) => r.p99)).toFixed(2)})`,
          );
          continue;
        }
        note(
          `${label}: median of ${runsOf.length}: ${(median(runsOf.map((r) => r.gc.bytesPerRequest)) / 1024).toFixed(2)} KiB/req, ` +
            `${median(runsOf.map((r) => r.gc.minorPer10k)).toFixed(1)} scavenges/10k, scavenge p50 ${median(runsOf.map((r) => r.gc.minorP50 ?? 0)).toFixed(2)} ms, ` +
            `worst scavenge ${Math.max(...runsOf.map((r) => r.gc.minorMax)).toFixed(2)} ms, p99 ${median(runsOf.map((r) => r.p99)).toFixed(2)} ms ` +
            `(worst ${Math.max(...runsOf.map((r) => r.p99)).toFixed(2)}), CPU ${median(runsOf.map((r) => r.cpuPerOp)).toFixed(0)} µs/req, ` +
            `RSS ${Math.max(...runsOf.map((r) => r.gc.rssMiB)).toFixed(0)} MiB`,
        );
      }
      if (other) {
        other.child.kill('SIGTERM');
        await new Promise((resolve) => other.child.once('exit', resolve));
      }
    }

    // ---- cost of the §9 limits: limits high (never refusing) vs limits disabled, same run ----
    if (runs('limits')) {
      section(`POST /v1/query with limits high vs limits disabled (${CONNECTIONS} connections)`);
      const unlimited = await startGatehouse(
        process.env.BENCH_LIMITS_B_ENV
          ? JSON.parse(process.env.BENCH_LIMITS_B_ENV)
          : { TENANT_RATE_LIMIT: '0', PRINCIPAL_RATE_LIMIT: '0', IP_IN_FLIGHT_LIMIT: '0' },
      );
      // A and B alternate LIMITS_ROUNDS times (A B B A A B …: neither side always runs first), each run
      // short, and every adjacent pair gives its own ratio: a noisy neighbour on the shared
      // machine weighs on both sides of a pair, and the median over pairs ignores the pairs it hit
      // hardest. CPU µs per request comes from /proc/<pid>/stat, which depends less on the
      // neighbours than the rate does.
      const pairs = [];
      const limited = { pid: gatehouse.pid, options: gatehouseQuery(gatehouse) };
      const open = { pid: unlimited.pid, options: gatehouseQuery(unlimited) };
      for (const target of [limited, open]) await cannon({ ...target.options, duration: 2 }); // warm-up: JIT, pools
      const runOnce = async (target) => {
        const before = cpuSeconds(target.pid);
        const result = await cannon({ ...target.options, duration: LIMITS_SECONDS });
        const cpu = cpuSeconds(target.pid) - before;
        return {
          rate: result.requests.average,
          p50: result.latency.p50,
          p99: result.latency.p99,
          count: result.requests.total,
          cpuPerOp: result.requests.total === 0 ? undefined : (cpu / result.requests.total) * 1e6,
          bad: result.non2xx + result.errors,
        };
      };
      for (let round = 0; round < LIMITS_ROUNDS; round += 1) {
        const first = round % 2 === 0 ? limited : open;
        const second = first === limited ? open : limited;
        const a = await runOnce(first);
        const b = await runOnce(second);
        const [withLimits, without] = first === limited ? [a, b] : [b, a];
        pairs.push({ on: withLimits, off: without });
        console.log(
          `    pair ${round + 1}: req/s ${withLimits.rate.toFixed(0)} / ${without.rate.toFixed(0)} = ${(withLimits.rate / without.rate).toFixed(3)}` +
            `   CPU µs/req ${withLimits.cpuPerOp.toFixed(0)} / ${without.cpuPerOp.toFixed(0)} = ${(withLimits.cpuPerOp / without.cpuPerOp).toFixed(3)}`,
        );
      }
      const median = (values) => {
        const sorted = [...values].sort((x, y) => x - y);
        const middle = Math.floor(sorted.length / 2);
        return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
      };
      const merge = (results) => ({
        ...results[0],
        bad: results.reduce((total, result) => total + result.bad, 0),
        rate: median(results.map((result) => result.rate)),
        p50: median(results.map((result) => result.p50)),
        p99: Math.max(...results.map((result) => result.p99)),
        cpuPerOp: median(results.map((result) => result.cpuPerOp)),
      });
      const on = merge(pairs.map((pair) => pair.on));
      const off = merge(pairs.map((pair) => pair.off));
      row('limits high (tenant, principal, in-flight on)', on);
      row('limits disabled', off);
      if (on.bad + off.bad > 0) note(`non-2xx or errors: ${on.bad} with limits, ${off.bad} without`);
      const rateRatios = pairs.map((pair) => pair.on.rate / pair.off.rate);
      const cpuRatios = pairs.map((pair) => pair.on.cpuPerOp / pair.off.cpuPerOp);
      ratio(`req/s limits high / disabled, median of ${pairs.length} pairs`, median(rateRatios), '≥ 0.95');
      note(`  pairs range ${Math.min(...rateRatios).toFixed(3)} … ${Math.max(...rateRatios).toFixed(3)}`);
      ratio(`CPU/request limits high / disabled, median of ${pairs.length} pairs`, median(cpuRatios), '≤ 1.05');
      note(`  pairs range ${Math.min(...cpuRatios).toFixed(3)} … ${Math.max(...cpuRatios).toFixed(3)}`);
      // the same check in isolation, free of the machine's noise: what one admission costs
      const admitCost = await admissionCpuMicros();
      note(`TrafficLimitGuard.admit + release in process: ${admitCost.toFixed(2)} µs CPU per call (tenant, principal, in-flight)`);
      ratio('admission CPU / CPU per proxied request without limits', admitCost / off.cpuPerOp, '≤ 0.05');
      unlimited.child.kill('SIGTERM');
      await new Promise((resolve) => unlimited.child.once('exit', resolve));
    }

    // ---- gRPC SubmitCommand ----
    if (runs('grpc')) {
      section(`gRPC SubmitCommand (${GRPC_CALLERS} callers, ${ROUNDS} interleaved rounds)`);
      const Service = grpc.loadPackageDefinition(protoLoader.loadSync(PROTO, LOADER)).aggregate.gateway.v1.CommandService;
      const submit = (client, metadata) => (worker) =>
        new Promise((resolve, reject) => {
          const request = {
            aggregate_type: 'order',
            aggregate_id: `o-${worker}`,
            command_id: crypto.randomUUID(),
            command_type: 'order.touch',
            payload: Buffer.from('{"n":1}'),
          };
          client.SubmitCommand(request, metadata, { deadline: Date.now() + 5000 }, (error, response) =>
            error ? reject(error) : resolve(response),
          );
        });
      const grpcFloor = await helperProcess(['--serve-grpc-floor', aggregate]);
      children.push(grpcFloor.child);
      const h2Floor = await helperProcess(['--serve-grpc-h2-floor', aggregate]);
      children.push(h2Floor.child);
      const gatehouseClient = new Service(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
      const directClient = new Service(aggregate, grpc.credentials.createInsecure());
      const floorClient = new Service(`127.0.0.1:${grpcFloor.info.port}`, grpc.credentials.createInsecure());
      const h2FloorClient = new Service(`127.0.0.1:${h2Floor.info.port}`, grpc.credentials.createInsecure());
      const metadata = new grpc.Metadata();
      metadata.set('authorization', `Bearer ${token}`);
      metadata.set('x-tenant-id', 'acme');
      await submit(gatehouseClient, metadata)(0);
      await submit(directClient, new grpc.Metadata())(0);
      await submit(floorClient, metadata)(0);
      await submit(h2FloorClient, metadata)(0);
      // BENCH_GRPC_B_DIST: a second Gatehouse from another build's dist, in the same rounds (A/B pairs of builds)
      const bDist = process.env.BENCH_GRPC_B_DIST;
      const other = bDist === undefined ? undefined : await startGatehouse({}, { dist: path.resolve(bDist) });
      const otherClient = other && new Service(`127.0.0.1:${other.grpcPort}`, grpc.credentials.createInsecure());
      const otherMetadata = new grpc.Metadata();
      if (other) {
        otherMetadata.set('authorization', `Bearer ${other.token}`);
        otherMetadata.set('x-tenant-id', 'acme');
        await submit(otherClient, otherMetadata)(0);
      }
      // B right after A, so that each round measures the two builds next to each other;
      // BENCH_GRPC_AB_ONLY=1: only A and B (many short rounds of pairs: BENCH_ROUND_DETAIL=1 prints them)
      const abOnly = other !== undefined && process.env.BENCH_GRPC_AB_ONLY === '1';
      const [grpcVia, grpcViaB, grpcDirect, grpcViaFloor, grpcViaH2Floor] = await interleavedLoops(
        [
          {
            label: 'A',
            once: submit(gatehouseClient, metadata),
            pid: gatehouse.pid,
            allPids: other ? [gatehouse.pid, upstreams.child.pid] : undefined,
          },
          other
            ? { label: 'B', once: submit(otherClient, otherMetadata), pid: other.pid, allPids: [other.pid, upstreams.child.pid] }
            : undefined,
          ...(abOnly
            ? []
            : [
                { label: 'direct', once: submit(directClient, new grpc.Metadata()), pid: upstreams.child.pid },
                { label: 'grpc-js floor', once: submit(floorClient, metadata), pid: grpcFloor.child.pid },
                { label: 'node:http2 floor', once: submit(h2FloorClient, metadata), pid: h2Floor.child.pid },
              ]),
        ],
        GRPC_CALLERS,
      );
      // BENCH_GRPC_AB_CONCURRENT=1 (with AB_ONLY): A and B also loaded at the same time, round after
      // round, so that whatever else runs on the machine weighs on both alike (per-round CPU per op)
      if (abOnly && process.env.BENCH_GRPC_AB_CONCURRENT === '1') {
        const seconds = Math.max(2, Math.round(DURATION / Math.max(1, ROUNDS)));
        for (let round = 0; round < ROUNDS; round += 1) {
          const [a, b] = await Promise.all([
            loops(GRPC_CALLERS, submit(gatehouseClient, metadata), gatehouse.pid, 1, seconds),
            loops(GRPC_CALLERS, submit(otherClient, otherMetadata), other.pid, 1, seconds),
          ]);
          for (const [label, result] of [
            ['A', a],
            ['B', b],
          ]) {
            console.log(
              `    concurrent round ${round + 1} ${label.padEnd(16)} ${result.rate.toFixed(0).padStart(6)}/s  CPU ${result.cpuPerOp.toFixed(1)} µs/op`,
            );
          }
        }
      }
      if (abOnly) {
        row('via Gatehouse (A)', grpcVia);
        row(`via Gatehouse B (${bDist})`, grpcViaB);
        ratio('CPU/call Gatehouse B / Gatehouse', grpcViaB.cpuPerOp / grpcVia.cpuPerOp);
        ratio('calls/s Gatehouse B / Gatehouse', grpcViaB.rate / grpcVia.rate);
      } else {
        row('via Gatehouse', grpcVia);
        if (grpcViaB) row(`via Gatehouse B (${bDist})`, grpcViaB);
        row('via bare grpc-js pass-through (floor)', grpcViaFloor);
        row('via bare node:http2 pass-through (floor)', grpcViaH2Floor);
        row('direct (CPU = the upstream)', grpcDirect);
        ratio('calls/s Gatehouse / direct', grpcVia.rate / grpcDirect.rate, '≥ 0.5');
        ratio('calls/s bare grpc-js pass-through / direct', grpcViaFloor.rate / grpcDirect.rate);
        ratio('calls/s bare node:http2 pass-through / direct', grpcViaH2Floor.rate / grpcDirect.rate);
        ratio('CPU/call Gatehouse / bare grpc-js pass-through', grpcVia.cpuPerOp / grpcViaFloor.cpuPerOp);
        ratio('CPU/call Gatehouse / bare node:http2 pass-through', grpcVia.cpuPerOp / grpcViaH2Floor.cpuPerOp);
        if (grpcViaB) {
          // the whole path's CPU per call (Gatehouse, the aggregate and the load generator), A then B
          note(
            `CPU per call of Gatehouse + aggregate + load generator: A ${grpcVia.allCpuPerOp.toFixed(0)} µs (${grpcVia.coresBusy.toFixed(2)} cores busy), ` +
              `B ${grpcViaB.allCpuPerOp.toFixed(0)} µs (${grpcViaB.coresBusy.toFixed(2)} cores busy)`,
          );
          ratio('calls/s Gatehouse B / direct', grpcViaB.rate / grpcDirect.rate);
          ratio('CPU/call Gatehouse B / bare node:http2 pass-through', grpcViaB.cpuPerOp / grpcViaH2Floor.cpuPerOp);
          ratio('CPU/call Gatehouse B / Gatehouse', grpcViaB.cpuPerOp / grpcVia.cpuPerOp);
        }
      }
      otherClient?.close();
      gatehouseClient.close();
      directClient.close();
      floorClient.close();
      h2FloorClient.close();
    }

    const openSockets = async (count, url, headers) => {
      const sockets = [];
      // in batches, so the handshakes do not all land at once
      for (let opened = 0; opened < count; opened += 100) {
        const batch = await Promise.all(
          Array.from(
            { length: Math.min(100, count - opened) },
            () =>
              new Promise((resolve, reject) => {
                const socket = new WebSocket(url, { headers, perMessageDeflate: false });
                socket.once('open', () => resolve(socket));
                socket.once('error', reject);
                socket.once('unexpected-response', (_request, response) => reject(new Error(`handshake answered ${response.statusCode}`)));
              }),
          ),
        );
        sockets.push(...batch);
      }
      return sockets;
    };
    const gatehouseSocketHeaders = { authorization: `Bearer ${token}`, 'x-tenant-id': 'acme' };

    // ---- WebSocket echo ----
    if (runs('ws')) {
      section(`WebSocket echo (${WS_SOCKETS} sockets; one round trip = 2 messages relayed; ${ROUNDS} interleaved rounds)`);
      const wsFloor = await helperProcess(['--serve-ws-floor', `ws://${projection}`]);
      children.push(wsFloor.child);
      const rawFloor = await helperProcess(['--serve-raw-ws-floor', `ws://${projection}`]);
      children.push(rawFloor.child);
      const echo = (sockets) => (worker) =>
        new Promise((resolve) => {
          const socket = sockets[worker];
          socket.once('message', resolve);
          socket.send('{"subscribe":"orders","seq":1}');
        });
      const gatehouseSockets = await openSockets(WS_SOCKETS, `ws://127.0.0.1:${port}/v1/subscribe/orders`, gatehouseSocketHeaders);
      const directSockets = await openSockets(WS_SOCKETS, `ws://${projection}/v1/subscribe/orders`, {});
      const floorSockets = await openSockets(WS_SOCKETS, `ws://127.0.0.1:${wsFloor.info.port}/v1/subscribe/orders`, {});
      const rawSockets = await openSockets(WS_SOCKETS, `ws://127.0.0.1:${rawFloor.info.port}/v1/subscribe/orders`, {});
      const [wsVia, wsDirect, wsViaFloor, wsViaRaw] = await interleavedLoops(
        [
          { once: echo(gatehouseSockets), pid: gatehouse.pid, opsPerLoop: 2, allPids: [gatehouse.pid, upstreams.child.pid] },
          { once: echo(directSockets), pid: upstreams.child.pid, opsPerLoop: 2, allPids: [upstreams.child.pid] },
          { once: echo(floorSockets), pid: wsFloor.child.pid, opsPerLoop: 2, allPids: [wsFloor.child.pid, upstreams.child.pid] },
          { once: echo(rawSockets), pid: rawFloor.child.pid, opsPerLoop: 2, allPids: [rawFloor.child.pid, upstreams.child.pid] },
        ],
        WS_SOCKETS,
      );
      for (const socket of [...gatehouseSockets, ...directSockets, ...floorSockets, ...rawSockets]) socket.terminate();
      const messages = (result) => ({ ...result, rate: result.rate * 2 });
      row('messages via Gatehouse (CPU per message)', messages(wsVia), 'msg/s');
      row('messages via bare ws relay (floor)', messages(wsViaFloor), 'msg/s');
      row('messages via raw TCP relay with frame scanner (floor)', messages(wsViaRaw), 'msg/s');
      row('messages direct (CPU = the upstream)', messages(wsDirect), 'msg/s');
      ratio('messages/s Gatehouse / direct', wsVia.rate / wsDirect.rate, '≥ 0.6');
      ratio('messages/s bare ws relay / direct', wsViaFloor.rate / wsDirect.rate);
      ratio('messages/s raw TCP relay with frame scanner / direct', wsViaRaw.rate / wsDirect.rate);
      ratio('CPU/message Gatehouse / bare ws relay', wsVia.cpuPerOp / wsViaFloor.cpuPerOp);
      ratio('CPU/message Gatehouse / raw TCP relay with frame scanner', wsVia.cpuPerOp / wsViaRaw.cpuPerOp);
      // the bound: the load generator, the upstream and the relay share this machine's cores; a
      // path that keeps them all busy cannot go faster, whatever the relay does
      const cores = os.availableParallelism();
      for (const [label, result] of [
        ['via Gatehouse', wsVia],
        ['via bare ws relay', wsViaFloor],
        ['via raw TCP relay', wsViaRaw],
        ['direct', wsDirect],
      ]) {
        note(
          `${label.padEnd(20)} all processes (load generator + upstream${label === 'direct' ? '' : ' + relay'}): ` +
            `${result.allCpuPerOp.toFixed(0)} µs CPU per message, ${result.coresBusy.toFixed(2)} of ${cores} cores busy`,
        );
      }
      ratio(
        'messages/s bound for any relay here: direct CPU/message ÷ (direct + floor relay CPU/message)',
        wsDirect.allCpuPerOp / (wsDirect.allCpuPerOp + Math.min(wsViaFloor.cpuPerOp, wsViaRaw.cpuPerOp)),
      );
    }

    // ---- memory per idle relayed WebSocket: plaintext upstream, mTLS upstream, bare TLS client floor ----
    if (runs('rss')) {
      section(`Idle relayed WebSockets (${RSS_BATCHES} batches of ${IDLE_SOCKETS} sockets)`);
      /**
       * RSS growth of a Gatehouse per idle relayed WebSocket, and its handshakes/s. The sockets are
       * opened in RSS_BATCHES batches of IDLE_SOCKETS, each measured on its own while the earlier
       * ones stay open: RSS grows in steps (heap pages, malloc arenas), so one batch of 1,000 reads
       * anywhere from 0 to 12 KB per socket; the median batch is the figure.
       */
      const idleRss = async (target) => {
        const url = `ws://127.0.0.1:${target.port}/v1/subscribe/orders`;
        const headers = { authorization: `Bearer ${target.token}`, 'x-tenant-id': 'acme' };
        // a first batch grows the heap's spaces and the connection pools to their working size
        const warm = await openSockets(100, url, headers);
        for (const socket of warm) socket.close();
        await sleep(2000);
        const idle = [];
        const batches = [];
        let handshakes;
        for (let batch = 0; batch < RSS_BATCHES; batch += 1) {
          await fullCollection(target.pid, target.gcFile);
          const before = rssBytes(target.pid);
          const started = performance.now();
          idle.push(...(await openSockets(IDLE_SOCKETS, url, headers)));
          handshakes ??= IDLE_SOCKETS / ((performance.now() - started) / 1000);
          await sleep(3000);
          const running = rssBytes(target.pid);
          // what the open sockets hold once the handshakes' garbage is collected
          const collected = await fullCollection(target.pid, target.gcFile);
          const after = rssBytes(target.pid);
          batches.push({
            perSocket: collected ? (after - before) / IDLE_SOCKETS : (running - before) / IDLE_SOCKETS,
            runningPerSocket: (running - before) / IDLE_SOCKETS,
            collected,
          });
        }
        const perSocket = [...batches.map((b) => b.perSocket)].sort((x, y) => x - y)[Math.floor(batches.length / 2)];
        return { perSocket, batches, handshakes, idle };
      };
      const batchText = (result) =>
        result.batches
          .map(
            (b) =>
              `${(b.perSocket / 1024).toFixed(2)}${b.collected ? ` (before the full collection ${(b.runningPerSocket / 1024).toFixed(2)})` : ' (no full collection: the RSS as it ran)'}`,
          )
          .join(', ');
      const closeAll = async (sockets) => {
        for (const socket of sockets) socket.terminate();
        await sleep(500);
      };
      // a fresh Gatehouse, as for mTLS below: one that has served the other sections keeps freed
      // heap and malloc room that 1,000 sockets fit into without the RSS moving (a full run read
      // 0.00 KB per socket in two of three batches that way)
      const gatehousePlain = await startGatehouse();
      const plain = await idleRss(gatehousePlain);
      await closeAll(plain.idle);
      gatehousePlain.child.kill('SIGTERM');
      await new Promise((resolve) => gatehousePlain.child.once('exit', resolve));

      // the same through a second Gatehouse whose upstreams are mTLS (UPSTREAM_TLS_CA_FILE, _CERT_FILE, _KEY_FILE)
      const certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-bench-mtls-'));
      cleanups.push(async () => fs.rmSync(certDir, { recursive: true, force: true }));
      const certs = makeBenchCertificates(certDir);
      const tlsProjection = await helperProcess(['--serve-tls-projection', certDir]);
      children.push(tlsProjection.child);
      const tlsRoutingFile = path.join(dataDir, 'routing-mtls.json');
      fs.writeFileSync(
        tlsRoutingFile,
        JSON.stringify({ ...routing, projection: { placement: { acme: 'p1' }, shards: { p1: [`127.0.0.1:${tlsProjection.info.port}`] } } }),
      );
      const gatehouseTls = await startGatehouse({
        ROUTING_FILE: tlsRoutingFile,
        UPSTREAM_TLS_CA_FILE: certs.ca,
        UPSTREAM_TLS_CERT_FILE: certs.clientCert,
        UPSTREAM_TLS_KEY_FILE: certs.clientKey,
      });
      const mtls = await idleRss(gatehouseTls);
      await closeAll(mtls.idle);
      gatehouseTls.child.kill('SIGTERM');
      await new Promise((resolve) => gatehouseTls.child.once('exit', resolve));

      // the floor: bare client connections held by a process of their own (Gatehouse's node flags), to the same servers
      const bare = async (kind, port) =>
        (await helperProcess(['--hold-clients', kind, String(port), certDir, String(IDLE_SOCKETS)], undefined, productionNodeArgs())).info
          .perSocket;
      const bareTls = await bare('tls', tlsProjection.info.port);
      const bareTcp = await bare('tcp', ports.httpPort);

      const handshakes = (label, rate) => report.at(-1).rows.push({ label, rate, p50: NaN, p99: NaN, unit: '/s' });
      handshakes('handshakes through Gatehouse', plain.handshakes);
      handshakes('handshakes through Gatehouse, mTLS upstream', mtls.handshakes);
      console.log(`  handshakes through Gatehouse ${plain.handshakes.toFixed(0)}/s, with an mTLS upstream ${mtls.handshakes.toFixed(0)}/s`);
      ratio('RSS per idle relayed WebSocket (KB)', plain.perSocket / 1024, '≤ 10');
      note(`  per batch of ${IDLE_SOCKETS}, KB per socket: ${batchText(plain)}`);
      ratio('RSS per idle relayed WebSocket, mTLS upstream (KB)', mtls.perSocket / 1024);
      note(`  per batch of ${IDLE_SOCKETS}, KB per socket: ${batchText(mtls)}`);
      ratio('RSS per bare tls.connect client connection (KB)', bareTls / 1024);
      ratio('RSS per bare net.connect client connection (KB)', bareTcp / 1024);
      ratio('mTLS − plaintext per relayed WebSocket (KB)', (mtls.perSocket - plain.perSocket) / 1024);
      ratio('bare TLS − bare TCP per connection (KB)', (bareTls - bareTcp) / 1024);
    }

    // ---- WORKERS=1 vs WORKERS=2 ----
    if (runs('workers')) {
      section(`POST /v1/query at WORKERS=1 and WORKERS=2 (${CONNECTIONS} connections, NATS)`);
      if (!(await natsReachable())) {
        note(`NATS not reachable at ${NATS_URL}: section skipped (WORKERS > 1 needs NATS)`);
      } else {
        const bucket = `bench_routing_${crypto.randomBytes(4).toString('hex')}`;
        const results = {};
        for (const workers of [1, 2]) {
          const target = await startGatehouse({ WORKERS: String(workers), NATS_URL, ROUTING_KV_BUCKET: bucket });
          results[workers] = await measuredCannon(target.pid, gatehouseQuery(target));
          row(`via Gatehouse, WORKERS=${workers}`, results[workers]);
          target.child.kill('SIGTERM');
          await new Promise((resolve) => target.child.once('exit', resolve));
        }
        ratio('req/s WORKERS=2 / WORKERS=1', results[2].rate / results[1].rate);
        note('(the load generator and the upstream share the same cores)');
      }
    }
    printSummary();
  } finally {
    // wait for the children to exit (a --cpu-prof profile is written on the way out)
    await stopChildren(children.reverse());
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  }
}

if (process.argv.includes('--serve-upstreams')) {
  serveUpstreams().catch((error) => {
    console.error(error);
    process.exit(1);
  });
} else if (process.argv.includes('--serve-grpc-floor')) {
  serveGrpcFloor(process.argv[process.argv.indexOf('--serve-grpc-floor') + 1]).catch((error) => {
    console.error(error);
    process.exit(1);
  });
} else if (process.argv.includes('--serve-grpc-h2-floor')) {
  serveGrpcH2Floor(process.argv[process.argv.indexOf('--serve-grpc-h2-floor') + 1]).catch((error) => {
    console.error(error);
    process.exit(1);
  });
} else if (process.argv.includes('--serve-raw-ws-floor')) {
  serveRawWsFloor(process.argv[process.argv.indexOf('--serve-raw-ws-floor') + 1]).catch((error) => {
    console.error(error);
    process.exit(1);
  });
} else if (process.argv.includes('--serve-ws-floor')) {
  serveWsFloor(process.argv[process.argv.indexOf('--serve-ws-floor') + 1]).catch((error) => {
    console.error(error);
    process.exit(1);
  });
} else if (process.argv.includes('--serve-tls-projection')) {
  serveTlsProjection(process.argv[process.argv.indexOf('--serve-tls-projection') + 1]).catch((error) => {
    console.error(error);
    process.exit(1);
  });
} else if (process.argv.includes('--hold-clients')) {
  const [kind, port, dir, count] = process.argv.slice(process.argv.indexOf('--hold-clients') + 1);
  holdClients(kind, Number(port), dir, Number(count)).then(
    () => process.exit(0),
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
} else if (process.argv.includes('--serve-floor')) {
  serveFloor(process.argv[process.argv.indexOf('--serve-floor') + 1]).catch((error) => {
    console.error(error);
    process.exit(1);
  });
} else {
  main().then(
    () => process.exit(0),
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
