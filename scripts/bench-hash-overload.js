#!/usr/bin/env node
'use strict';
/*
 * npm run bench:hash-overload      (after `npm run build`; PostgreSQL at BENCH_PG_URL)
 *
 * CONTRACT §4's password-hasher bound under a sign-in burst: BENCH_SIGNINS (200) concurrent
 * sign-ins against one Gatehouse (production settings, default PASSWORD_HASH_CONCURRENCY and
 * PASSWORD_HASH_QUEUE), while 4 callers keep asking GET /v1/auth/me with an access token
 * obtained before. Prints how many sign-ins were admitted or refused (503), the p50/p99 of each,
 * and the /v1/auth/me p99 before and during the burst.
 */
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const { freePort, waitForReady, stopChildren, productionNodeArgs } = require('./bench-support');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const PG_ADMIN = process.env.BENCH_PG_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const SIGNINS = Number(process.env.BENCH_SIGNINS ?? 200);
const ME_CALLERS = 4;

function percentile(values, p) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function timed(fn) {
  const started = performance.now();
  const result = await fn();
  return { result, ms: performance.now() - started };
}

/** GET /v1/auth/me in a loop from `callers` callers until `until()`; latencies in ms. */
async function meStream(base, token, callers, until) {
  const latencies = [];
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (!until()) {
        const { result, ms } = await timed(() => fetch(`${base}/v1/auth/me`, { headers: { authorization: `Bearer ${token}` } }));
        await result.arrayBuffer();
        if (result.status === 200) latencies.push(ms);
      }
    }),
  );
  return latencies;
}

async function main() {
  const pg = require('pg');
  const admin = new pg.Client({ connectionString: PG_ADMIN });
  await admin.connect();
  const database = `bench_hash_${crypto.randomBytes(4).toString('hex')}`;
  await admin.query(`CREATE DATABASE ${database}`);
  const dbUrl = new URL(PG_ADMIN);
  dbUrl.pathname = `/${database}`;
  const port = await freePort();
  const email = 'bench-hash@example.com';
  const password = 'bench hash password 12345';
  // BENCH_DIST: another build to measure (default dist/); BENCH_NODE_ARGS: extra node flags for the server, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
  const nodeArgs = [...productionNodeArgs(), ...(process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean)];
  const child = spawn(process.execPath, [...nodeArgs, path.join(process.env.BENCH_DIST ?? path.join(ROOT, 'dist'), 'main.js')], {
    env: {
      PATH: process.env.PATH,
      NODE_ENV: 'production',
      MASTER_KEY: crypto.randomBytes(32).toString('base64'),
      PORT: String(port),
      GRPC_PORT: '0',
      DATABASE_URL: dbUrl.toString(),
      DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'gh-bench-hash-')),
      BOOTSTRAP_ADMIN_EMAIL: email,
      BOOTSTRAP_ADMIN_PASSWORD: password,
      WORKERS: '1',
      LOG_LEVEL: 'warn',
      AUTH_IP_LIMIT: '1000000',
      AUTH_ACCOUNT_FAILURE_LIMIT: '1000000',
      ...(process.env.BENCH_HASH_ENV ? JSON.parse(process.env.BENCH_HASH_ENV) : {}),
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitForReady(base, child);
    const signin = () =>
      fetch(`${base}/v1/auth/signin`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email, password }),
      });
    const first = await signin();
    const token = (await first.json()).access_token;
    if (!token) throw new Error('bench sign-in failed');

    const baselineEnd = Date.now() + 3000;
    const baseline = await meStream(base, token, ME_CALLERS, () => Date.now() > baselineEnd);

    let burstDone = false;
    const during = meStream(base, token, ME_CALLERS, () => burstDone);
    const started = performance.now();
    const results = await Promise.all(
      Array.from({ length: SIGNINS }, async () => {
        const { result, ms } = await timed(signin);
        await result.arrayBuffer();
        return { status: result.status, retryAfter: result.headers.get('retry-after'), ms };
      }),
    );
    const burstMs = performance.now() - started;
    burstDone = true;
    const meDuring = await during;

    const admitted = results.filter((r) => r.status === 200).map((r) => r.ms);
    const refused = results.filter((r) => r.status === 503);
    const other = results.filter((r) => r.status !== 200 && r.status !== 503);
    console.log(
      `Password-hash overload — ${os.cpus().length} cores, load average ${os
        .loadavg()
        .map((n) => n.toFixed(1))
        .join(' ')}`,
    );
    console.log(
      `  ${SIGNINS} concurrent sign-ins in ${burstMs.toFixed(0)} ms: ${admitted.length} admitted, ${refused.length} 503 unavailable, ${other.length} other`,
    );
    console.log(`  admitted sign-ins  p50 ${percentile(admitted, 50).toFixed(0)} ms   p99 ${percentile(admitted, 99).toFixed(0)} ms`);
    const refusedMs = refused.map((r) => r.ms);
    if (refused.length > 0) {
      console.log(
        `  503 refusals       p50 ${percentile(refusedMs, 50).toFixed(0)} ms   p99 ${percentile(refusedMs, 99).toFixed(0)} ms   Retry-After ${refused[0].retryAfter}`,
      );
    }
    console.log(
      `  GET /v1/auth/me before  p50 ${percentile(baseline, 50).toFixed(1)} ms   p99 ${percentile(baseline, 99).toFixed(1)} ms (${baseline.length} calls)`,
    );
    console.log(
      `  GET /v1/auth/me during  p50 ${percentile(meDuring, 50).toFixed(1)} ms   p99 ${percentile(meDuring, 99).toFixed(1)} ms (${meDuring.length} calls)`,
    );
  } finally {
    await stopChildren([child]);
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch(() => undefined);
    await admin.end();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
