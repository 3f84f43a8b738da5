#!/usr/bin/env node
'use strict';
/*
 * npm run bench   (after npm run build; needs PostgreSQL on 127.0.0.1:5432, NATS optional)
 *
 * Prints numbers, asserts nothing. Starts one Gatehouse process on a fresh database and measures:
 *  - bare argon2id verifications/s in this process (the ceiling for password sign-ins),
 *  - password sign-ins/s through Gatehouse,
 *  - refresh rotations/s (each worker rotates its own session's token in a chain),
 *  - authenticated GET /v1/auth/me requests/s (the per-request token path, no database).
 */
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const fs = require('node:fs');
const autocannon = require('autocannon');
const pg = require('pg');
const argon2 = require('@node-rs/argon2');

const PG_ADMIN = process.env.BENCH_PG_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const NATS_URL = process.env.BENCH_NATS_URL ?? 'nats://127.0.0.1:4222';
const DURATION = Number(process.env.BENCH_SECONDS ?? 8);
const PASSWORD = 'correct horse battery staple 42';

const freePort = () =>
  new Promise((resolve) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });

async function post(base, p, body, token) {
  const response = await fetch(base + p, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: response.status, json: await response.json().catch(() => undefined) };
}

function cannon(options) {
  return new Promise((resolve, reject) => {
    autocannon({ duration: DURATION, connections: 16, ...options }, (error, result) => (error ? reject(error) : resolve(result)));
  });
}

function line(label, value, extra = '') {
  console.log(`${label.padEnd(44)} ${value}${extra ? `  ${extra}` : ''}`);
}

async function argonCeiling() {
  const params = { algorithm: 2, memoryCost: 19456, timeCost: 2, parallelism: 1 };
  const phc = await argon2.hash(PASSWORD, params);
  const concurrency = 16;
  let done = 0;
  const deadline = Date.now() + DURATION * 1000;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < deadline) {
        await argon2.verify(phc, PASSWORD);
        done += 1;
      }
    }),
  );
  return done / ((Date.now() - started) / 1000);
}

async function main() {
  const database = `bench_${crypto.randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${database}`);
  const dbUrl = new URL(PG_ADMIN);
  dbUrl.pathname = `/${database}`;
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-bench-'));
  const natsUp = await new Promise((resolve) => {
    const socket = net.connect(4222, '127.0.0.1', () => (socket.destroy(), resolve(true)));
    socket.on('error', () => resolve(false));
  });
  const child = spawn(process.execPath, [path.join(__dirname, '..', 'dist', 'main.js')], {
    env: {
      PATH: process.env.PATH,
      NODE_ENV: 'production',
      MASTER_KEY: crypto.randomBytes(32).toString('base64'),
      PORT: String(port),
      GRPC_PORT: '0',
      DATABASE_URL: dbUrl.toString(),
      ...(natsUp ? { NATS_URL } : {}),
      DATA_DIR: dataDir,
      LOG_LEVEL: 'warn',
      AUTH_IP_LIMIT: '10000000',
      AUTH_ACCOUNT_FAILURE_LIMIT: '1000000',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const base = `http://127.0.0.1:${port}`;
  try {
    for (let i = 0; ; i += 1) {
      try {
        if ((await fetch(`${base}/ready`)).status === 200) break;
      } catch {
        /* starting */
      }
      if (i > 300) throw new Error('gatehouse did not become ready');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    console.log(`Gatehouse bench — ${os.cpus().length} cores, ${DURATION}s per run, PostgreSQL${natsUp ? ' + NATS' : ''}\n`);

    const ceiling = await argonCeiling();
    line('argon2id verify (bare, this process)', `${ceiling.toFixed(1)} /s`, 'm=19456 t=2 p=1');

    const email = `bench-${Date.now()}@example.com`;
    const signup = await post(base, '/v1/auth/signup', { email, password: PASSWORD });
    if (signup.status !== 201) throw new Error(`signup failed: ${signup.status}`);

    const signin = await cannon({
      url: `${base}/v1/auth/signin`,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password: PASSWORD }),
    });
    line(
      'POST /v1/auth/signin',
      `${signin.requests.average.toFixed(1)} /s`,
      `p50 ${signin.latency.p50} ms, p99 ${signin.latency.p99} ms, non-2xx ${signin.non2xx}`,
    );
    line('  signin / bare argon2 ratio', (signin.requests.average / ceiling).toFixed(2));

    const me = await cannon({ url: `${base}/v1/auth/me`, headers: { authorization: `Bearer ${signup.json.access_token}` } });
    line(
      'GET /v1/auth/me (token verify + 1 query)',
      `${me.requests.average.toFixed(0)} /s`,
      `p50 ${me.latency.p50} ms, p99 ${me.latency.p99} ms`,
    );

    const sessions = await cannon({ url: `${base}/.well-known/jwks.json` });
    line(
      'GET /.well-known/jwks.json',
      `${sessions.requests.average.toFixed(0)} /s`,
      `p50 ${sessions.latency.p50} ms, p99 ${sessions.latency.p99} ms`,
    );

    const workers = 16;
    const tokens = [];
    for (let i = 0; i < workers; i += 1)
      tokens.push((await post(base, '/v1/auth/signin', { email, password: PASSWORD })).json.refresh_token);
    let rotations = 0;
    let failures = 0;
    const latencies = [];
    const deadline = Date.now() + DURATION * 1000;
    const started = Date.now();
    await Promise.all(
      tokens.map(async (initial) => {
        let token = initial;
        while (Date.now() < deadline) {
          const t0 = performance.now();
          const result = await post(base, '/v1/auth/refresh', { refresh_token: token });
          latencies.push(performance.now() - t0);
          if (result.status !== 200) {
            failures += 1;
            return;
          }
          token = result.json.refresh_token;
          rotations += 1;
        }
      }),
    );
    latencies.sort((x, y) => x - y);
    const pct = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))].toFixed(1);
    line(
      'POST /v1/auth/refresh (rotation chains)',
      `${(rotations / ((Date.now() - started) / 1000)).toFixed(1)} /s`,
      `p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms, failures ${failures}, ${workers} chains`,
    );
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await admin.end();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
