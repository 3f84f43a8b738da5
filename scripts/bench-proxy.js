#!/usr/bin/env node
'use strict';
/*
 * node scripts/bench-proxy.js   (part of `npm run bench`; after npm run build; needs PostgreSQL on 127.0.0.1:5432)
 *
 * Prints numbers, asserts nothing. In one run, against one fake upstream process:
 *  - authenticated POST /v1/query/{view} through Gatehouse vs straight to the upstream vs through
 *    nginx (one worker, upstream keep-alive) — requests/s, p50/p99 and ratios;
 *  - gRPC SubmitCommand through Gatehouse vs straight to the fake aggregate;
 *  - WebSocket echo round trips/s through Gatehouse vs straight to the fake projection.
 * nginx must be installed (apt-get install -y nginx); without it its row is skipped.
 * BENCH_ONLY=http, grpc or ws runs one section.
 */
const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
const PROTO = path.join(ROOT, 'proto', 'aggregate', 'gateway', 'v1', 'command_service.proto');
const LOADER = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
const PG_ADMIN = process.env.BENCH_PG_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const DURATION = Number(process.env.BENCH_SECONDS ?? 8);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const QUERY_BODY = JSON.stringify({ filter: { status: 'open', customer: 'c-42' }, limit: 20 });

const freePort = () =>
  new Promise((resolve) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });

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

/* ---------- measurement helpers ---------- */

/** user + system CPU seconds a process has used so far (Linux /proc; 0 elsewhere). */
function cpuSeconds(pid) {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

function cannon(options) {
  const autocannon = require('autocannon');
  return new Promise((resolve, reject) => {
    autocannon({ duration: DURATION, connections: CONNECTIONS, ...options }, (error, result) => (error ? reject(error) : resolve(result)));
  });
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Runs `workers` loops of `once()` for DURATION seconds; returns ops/s and latency percentiles (ms). */
async function loops(workers, once) {
  const latencies = [];
  let errors = 0;
  const deadline = Date.now() + DURATION * 1000;
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
  latencies.sort((a, b) => a - b);
  return { rate: latencies.length / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99), errors };
}

const table = [];
function row(label, rate, p50, p99, extra = '') {
  table.push({ label, rate });
  console.log(
    `${label.padEnd(44)} ${rate.toFixed(0).padStart(7)} /s   p50 ${p50.toFixed(2).padStart(6)} ms   p99 ${p99.toFixed(2).padStart(6)} ms${extra ? `   ${extra}` : ''}`,
  );
}
function ratio(label, a, b) {
  console.log(`  ${label.padEnd(42)} ${(a / b).toFixed(2)}`);
}

function startNginx(upstreamPort) {
  const which = spawnSync('sh', ['-c', 'command -v nginx || ls /usr/sbin/nginx'], { encoding: 'utf8' });
  const binary = which.stdout.trim().split('\n')[0];
  if (which.status !== 0 || !binary) return undefined;
  return freePort().then(async (port) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-bench-nginx-'));
    const conf = `
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
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
    for (let i = 0; i < 100; i += 1) {
      if (
        await new Promise((resolve) =>
          net
            .connect(port, '127.0.0.1')
            .once('connect', function () {
              this.destroy();
              resolve(true);
            })
            .once('error', () => resolve(false)),
        )
      ) {
        return { port, child };
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    child.kill('SIGKILL');
    return undefined;
  });
}

/* ---------- main ---------- */

async function main() {
  const pg = require('pg');
  const grpc = require('@grpc/grpc-js');
  const protoLoader = require('@grpc/proto-loader');
  const WebSocket = require('ws');
  const children = [];
  const cleanups = [];
  try {
    // the fake upstreams in their own process, so they do not share the event loop with the load generator
    const upstreams = spawn(process.execPath, [__filename, '--serve-upstreams'], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(upstreams);
    const ports = await new Promise((resolve, reject) => {
      upstreams.stdout.once('data', (chunk) => resolve(JSON.parse(chunk.toString())));
      upstreams.once('exit', () => reject(new Error('upstream process exited')));
    });
    const projection = `127.0.0.1:${ports.httpPort}`;
    const aggregate = `127.0.0.1:${ports.grpcPort}`;

    const database = `bench_proxy_${crypto.randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: PG_ADMIN });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${database}`);
    cleanups.push(async () => {
      await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
      await admin.end();
    });
    const dbUrl = new URL(PG_ADMIN);
    dbUrl.pathname = `/${database}`;
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-bench-proxy-'));
    const routingFile = path.join(dataDir, 'routing.json');
    fs.writeFileSync(
      routingFile,
      JSON.stringify({
        aggregate: { placement: { acme: 'a1' }, shards: { a1: [aggregate] } },
        projection: { placement: { acme: 'p1' }, shards: { p1: [projection] } },
      }),
    );
    const port = await freePort();
    const grpcPort = await freePort();
    const adminEmail = 'bench-admin@example.com';
    const adminPassword = 'bench admin password 12345';
    // e.g. BENCH_GATEHOUSE_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles Gatehouse under load
    const nodeArgs = (process.env.BENCH_GATEHOUSE_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const gatehouse = spawn(process.execPath, [...nodeArgs, path.join(ROOT, 'dist', 'main.js')], {
      env: {
        PATH: process.env.PATH,
        NODE_ENV: 'production',
        MASTER_KEY: crypto.randomBytes(32).toString('base64'),
        PORT: String(port),
        GRPC_PORT: String(grpcPort),
        DATABASE_URL: dbUrl.toString(),
        DATA_DIR: dataDir,
        ROUTING_FILE: routingFile,
        BOOTSTRAP_ADMIN_EMAIL: adminEmail,
        BOOTSTRAP_ADMIN_PASSWORD: adminPassword,
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    children.push(gatehouse);
    const base = `http://127.0.0.1:${port}`;
    for (let i = 0; ; i += 1) {
      try {
        if ((await fetch(`${base}/ready`)).status === 200) break;
      } catch {
        /* starting */
      }
      if (i > 300) throw new Error('gatehouse did not become ready');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const signin = await fetch(`${base}/v1/auth/signin`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: adminEmail, password: adminPassword }),
    }).then((response) => response.json());
    const token = signin.access_token;
    if (!token) throw new Error('bench sign-in failed');

    console.log(
      `\nGatehouse proxy bench — ${os.cpus().length} cores, ${DURATION}s per run, ${CONNECTIONS} connections, one fake upstream process\n`,
    );

    // BENCH_ONLY=http|grpc|ws runs one section (e.g. to measure a change to one transport)
    const only = process.env.BENCH_ONLY;
    const runs = (section) => only === undefined || only === '' || only === section;

    // ---- HTTP query: Gatehouse vs direct vs nginx ----
    if (runs('http')) {
      const queryOptions = { method: 'POST', body: QUERY_BODY, headers: { 'content-type': 'application/json' } };
      const viaGatehouse = await cannon({
        ...queryOptions,
        url: `${base}/v1/query/orders`,
        headers: { ...queryOptions.headers, authorization: `Bearer ${token}`, 'x-tenant-id': 'acme' },
      });
      const direct = await cannon({ ...queryOptions, url: `http://${projection}/v1/query/orders` });
      let viaNginx;
      const nginx = await startNginx(ports.httpPort);
      if (nginx === undefined) {
        console.log('nginx not installed (apt-get install -y nginx): its row is skipped');
      } else {
        children.push(nginx.child);
        viaNginx = await cannon({ ...queryOptions, url: `http://127.0.0.1:${nginx.port}/v1/query/orders` });
      }
      const httpRow = (label, result) =>
        row(label, result.requests.average, result.latency.p50, result.latency.p99, `non-2xx ${result.non2xx}, errors ${result.errors}`);
      httpRow('POST /v1/query via Gatehouse (authn+authz)', viaGatehouse);
      httpRow('POST /v1/query direct to upstream', direct);
      if (viaNginx) httpRow('POST /v1/query via nginx (1 worker)', viaNginx);
      ratio('Gatehouse / direct (requests/s)', viaGatehouse.requests.average, direct.requests.average);
      if (viaNginx) ratio('Gatehouse / nginx (requests/s)', viaGatehouse.requests.average, viaNginx.requests.average);
      if (viaNginx) ratio('Gatehouse / nginx (p99 latency)', viaGatehouse.latency.p99, viaNginx.latency.p99);
    }

    // ---- gRPC SubmitCommand ----
    if (runs('grpc')) {
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
      const gatehouseClient = new Service(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
      const directClient = new Service(aggregate, grpc.credentials.createInsecure());
      const metadata = new grpc.Metadata();
      metadata.set('authorization', `Bearer ${token}`);
      metadata.set('x-tenant-id', 'acme');
      await submit(gatehouseClient, metadata)(0);
      const grpcVia = await loops(CONNECTIONS, submit(gatehouseClient, metadata));
      const grpcDirect = await loops(CONNECTIONS, submit(directClient, new grpc.Metadata()));
      row('gRPC SubmitCommand via Gatehouse', grpcVia.rate, grpcVia.p50, grpcVia.p99, `errors ${grpcVia.errors}`);
      row('gRPC SubmitCommand direct', grpcDirect.rate, grpcDirect.p50, grpcDirect.p99, `errors ${grpcDirect.errors}`);
      ratio('Gatehouse / direct (calls/s)', grpcVia.rate, grpcDirect.rate);
      gatehouseClient.close();
      directClient.close();
    }

    // ---- WebSocket echo ----
    if (runs('ws')) {
      const openSockets = async (url, headers) =>
        Promise.all(
          Array.from(
            { length: CONNECTIONS },
            () =>
              new Promise((resolve, reject) => {
                const socket = new WebSocket(url, { headers, perMessageDeflate: false });
                socket.once('open', () => resolve(socket));
                socket.once('error', reject);
              }),
          ),
        );
      const echo = (sockets) => (worker) =>
        new Promise((resolve) => {
          const socket = sockets[worker];
          socket.once('message', resolve);
          socket.send('{"subscribe":"orders","seq":1}');
        });
      const gatehouseSockets = await openSockets(`ws://127.0.0.1:${port}/v1/subscribe/orders`, {
        authorization: `Bearer ${token}`,
        'x-tenant-id': 'acme',
      });
      const cpuBefore = cpuSeconds(gatehouse.pid);
      const wsVia = await loops(CONNECTIONS, echo(gatehouseSockets));
      const wsCpu = cpuSeconds(gatehouse.pid) - cpuBefore;
      const directSockets = await openSockets(`ws://${projection}/v1/subscribe/orders`, {});
      const wsDirect = await loops(CONNECTIONS, echo(directSockets));
      for (const socket of [...gatehouseSockets, ...directSockets]) socket.terminate();
      row(
        'WebSocket echo round trips via Gatehouse',
        wsVia.rate,
        wsVia.p50,
        wsVia.p99,
        `(${(wsVia.rate * 2).toFixed(0)} messages/s relayed)`,
      );
      row('WebSocket echo round trips direct', wsDirect.rate, wsDirect.p50, wsDirect.p99);
      ratio('Gatehouse / direct (round trips/s)', wsVia.rate, wsDirect.rate);
      // CPU per relayed message barely depends on what else runs on the machine, unlike rates
      if (wsCpu > 0) console.log(`  Gatehouse CPU per relayed message ${((wsCpu / (wsVia.rate * DURATION * 2)) * 1e6).toFixed(1)} µs`);
    }
  } finally {
    for (const child of children.reverse()) child.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 300));
    for (const cleanup of cleanups) await cleanup().catch(() => undefined);
  }
}

if (process.argv.includes('--serve-upstreams')) {
  serveUpstreams().catch((error) => {
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
