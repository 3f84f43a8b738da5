#!/usr/bin/env node
'use strict';
/*
 * npm run bench   (after npm run build; needs PostgreSQL on 127.0.0.1:5432, NATS optional)
 *
 * Prints numbers, asserts nothing. Everything is measured in one run on a fresh database, and
 * each Gatehouse row also shows the Gatehouse process CPU per request (from /proc/<pid>/stat):
 *  - bare argon2id verifications/s in this process, 4 in flight, same parameters (the ceiling
 *    for password sign-ins), sign-ins/s through Gatehouse and their ratio;
 *  - authenticated GET /v1/auth/me requests/s;
 *  - refresh rotations/s with 16 and 64 chains (each worker rotates its own session's token),
 *    against a bare `pg` loop running the rotation's single compare-and-set statement with
 *    the same concurrency on the same database (the ratio is what Gatehouse keeps of it);
 *  - audited mutations/s (POST /admin/tenants) from 32 writers across two replicas, chained
 *    audit append vs BENCH_AUDIT_PLAIN_INSERT=true (a plain insert, published to JetStream all
 *    the same), and their ratio; for each, PostgreSQL's CPU per mutation (the bench database's
 *    backends and the WAL writer) and what its backends wait on (pg_stat_activity samples).
 *
 * BENCH_SECONDS (default 8) per run; BENCH_PROFILE=<dir> starts Gatehouse with --cpu-prof into
 * that directory and counts the SQL statements each measured request sends (scripts/bench-count.js);
 * BENCH_DIST=<dir> runs another build's main.js (e.g. a before/after pair); BENCH_LOG=<file> appends Gatehouse's log lines there; BENCH_ONLY=signin,me,refresh,audit runs only those sections (a profile then covers just them).
 * BENCH_PERF=<file> runs `perf record -g` (BENCH_PERF_HZ, default 999) on Gatehouse's processes and their
 * PostgreSQL backends for the measured sign-in run; BENCH_GATEHOUSE_NODE_ARGS adds node flags to
 * Gatehouse (e.g. --perf-basic-prof-only-functions for JavaScript names in perf); BENCH_SIGNIN_CONNECTIONS
 * (default 16) sets the sign-in run's connections (4 = as many as hashes in flight: no queueing, no 503).
 * The sign-in row also splits each sign-in's CPU by where it ran: Gatehouse's main threads, its
 * argon2 threads, V8's helper threads, the PostgreSQL backends and the load generator, in ms and in
 * bare verifications, and shows what an idle replica spends per second (charged to the run too).
 * Runs start once every worker of the replica has started and gone quiet, after a 2 s warm-up.
 * Only 2xx answers count as sign-ins; Gatehouse runs as in production (WORKERS = cores), with
 * room for 4 hashes in flight like the bare loop and a queue no run fills, and without the
 * admin second-factor requirement (the bench admin has no TOTP).
 */
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const net = require('node:net');
const { freePort, stopChildren, productionNodeArgs } = require('./bench-support');
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
const ONLY = new Set((process.env.BENCH_ONLY ?? 'signin,me,refresh,audit').split(',').map((part) => part.trim()));

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
  console.log(`${label.padEnd(58)} ${value}${extra ? `  ${extra}` : ''}`);
}

const TICK_MS = 1000 / 100; // USER_HZ is 100 on Linux

/** CPU milliseconds (user + system) a process and its live children (WORKERS) have used so far. */
function cpuMs(pid) {
  let stat;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return 0;
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  let children = [];
  try {
    children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    /* no children file */
  }
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS + children.reduce((sum, child) => sum + cpuMs(child), 0);
}

/** Where a process tree's CPU went so far: ms per thread kind (by the thread's name in /proc), over `pid` and its children. */
function threadCpuMs(pid, into = new Map()) {
  let tasks = [];
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return into;
  }
  for (const task of tasks) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/task/${task}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const kind =
        name === 'MainThread' || task === String(pid)
          ? 'main thread'
          : name === 'WorkerThread'
            ? 'worker threads (argon2)'
            : name === 'libuv-worker'
              ? 'libuv pool'
              : name.startsWith('V8') || name === 'DelayedTaskSche'
                ? 'V8 helpers (GC, compiler)'
                : 'other threads';
      into.set(kind, (into.get(kind) ?? 0) + (Number(fields[11]) + Number(fields[12])) * TICK_MS);
    } catch {
      /* the thread ended */
    }
  }
  let children = [];
  try {
    children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    /* no children file */
  }
  for (const child of children) threadCpuMs(child, into);
  return into;
}

/** The pids of a process tree (a replica's primary and its workers). */
function treePids(pid) {
  let children = [];
  try {
    children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    /* no children file */
  }
  return [pid, ...children.flatMap(treePids)];
}

/** With BENCH_PERF=<file>: `perf record` on these processes (every thread) until the returned stop is called. */
function perfRecord(pids) {
  if (!process.env.BENCH_PERF) return async () => {};
  const perf = spawn(
    'perf',
    ['record', '-F', process.env.BENCH_PERF_HZ ?? '999', '-g', '-o', path.resolve(process.env.BENCH_PERF), '-p', pids.join(',')],
    {
      stdio: 'ignore',
    },
  );
  return () => new Promise((resolve) => (perf.once('exit', resolve), perf.kill('SIGINT')));
}

/** The PostgreSQL backends serving `database` (pids read from pg_stat_activity; same machine). */
async function backendPids(admin, database) {
  const { rows } = await admin.query(`SELECT pid FROM pg_stat_activity WHERE datname = $1`, [database]);
  return rows.map((row) => row.pid);
}

/** Runs `work` (resolving to a request count) and reports CPU ms per request across `pids`. */
async function measured(pids, work) {
  const cpu0 = pids.reduce((sum, pid) => sum + cpuMs(pid), 0);
  const started = performance.now();
  const count = await work();
  const seconds = (performance.now() - started) / 1000;
  const cpu = pids.reduce((sum, pid) => sum + cpuMs(pid), 0) - cpu0;
  return { count, seconds, rate: count / seconds, cpuPerRequest: count > 0 ? cpu / count : NaN };
}

/**
 * With BENCH_PROFILE: the SQL statements a replica sent since the last call, per request
 * (`requests`), most frequent first. Without: ''.
 */
async function statements(replica, requests = 1) {
  if (replica.countDir === undefined) return '';
  // each process serves its own counts, on the port it wrote to countDir/<pid>
  let total = 0;
  const merged = new Map();
  let answered = false;
  for (const file of fs.readdirSync(replica.countDir)) {
    const port = fs.readFileSync(path.join(replica.countDir, file), 'utf8');
    const response = await fetch(`http://127.0.0.1:${port}/`).catch(() => undefined);
    if (!response?.ok) continue;
    answered = true;
    const counts = await response.json();
    total += counts.total;
    for (const [text, n] of Object.entries(counts.byStatement)) merged.set(text, (merged.get(text) ?? 0) + n);
  }
  if (!answered) return '';
  const byStatement = Object.fromEntries([...merged.entries()].sort((a, b) => b[1] - a[1]));
  const per = (n) => (n / Math.max(requests, 1)).toFixed(2);
  const top = Object.entries(byStatement)
    .filter(([, n]) => n / Math.max(requests, 1) >= 0.05)
    .slice(0, 12)
    .map(([text, n]) => `\n      ${per(n).padStart(6)}  ${text}`)
    .join('');
  return `${per(total)}${top}`;
}

async function argonCeiling() {
  const params = { algorithm: 2, memoryCost: 19456, timeCost: 2, parallelism: 1 };
  const phc = await argon2.hash(PASSWORD, params);
  const concurrency = 4;
  let done = 0;
  const deadline = Date.now() + DURATION * 1000;
  const result = await measured([process.pid], async () => {
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (Date.now() < deadline) {
          await argon2.verify(phc, PASSWORD);
          done += 1;
        }
      }),
    );
    return done;
  });
  return result;
}

/** Starts `count` Gatehouse replicas on one database; resolves once all are ready. */
async function startReplicas(count, dbUrl, extraEnv = {}) {
  const natsUp = await new Promise((resolve) => {
    const socket = net.connect(4222, '127.0.0.1', () => (socket.destroy(), resolve(true)));
    socket.on('error', () => resolve(false));
  });
  const replicas = [];
  for (let index = 0; index < count; index += 1) {
    const port = await freePort();
    const countDir = process.env.BENCH_PROFILE ? fs.mkdtempSync(path.join(os.tmpdir(), 'gh-bench-count-')) : undefined;
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-bench-'));
    const profile = process.env.BENCH_PROFILE;
    const nodeArgs = [
      ...productionNodeArgs(),
      ...(profile ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(profile)}`, '--require', path.join(__dirname, 'bench-count.js')] : []),
      ...(process.env.BENCH_GATEHOUSE_NODE_ARGS ?? '').split(/\s+/).filter(Boolean),
    ];
    const child = spawn(
      process.execPath,
      [...nodeArgs, path.join(process.env.BENCH_DIST ?? path.join(__dirname, '..', 'dist'), 'main.js')],
      {
        env: {
          PATH: process.env.PATH,
          NODE_ENV: 'production',
          MASTER_KEY,
          PORT: String(port),
          GRPC_PORT: '0',
          DATABASE_URL: dbUrl,
          ...(natsUp ? { NATS_URL } : {}),
          DATA_DIR: dataDir,
          LOG_LEVEL: 'warn',
          AUTH_IP_LIMIT: '10000000',
          AUTH_ACCOUNT_FAILURE_LIMIT: '1000000',
          ADMIN_WRITE_LIMIT: '10000000/60s',
          ADMIN_MFA_REQUIRED: 'false',
          PASSWORD_HASH_CONCURRENCY: '4',
          PASSWORD_HASH_QUEUE: '64',
          BOOTSTRAP_ADMIN_EMAIL: ADMIN_EMAIL,
          BOOTSTRAP_ADMIN_PASSWORD: PASSWORD,
          ...(countDir ? { BENCH_COUNT_DIR: countDir } : {}),
          ...extraEnv,
        },
        stdio: ['ignore', process.env.BENCH_LOG ? fs.openSync(process.env.BENCH_LOG, 'a') : 'ignore', 'inherit'],
      },
    );
    replicas.push({ child, pid: child.pid, base: `http://127.0.0.1:${port}`, countDir });
    // one at a time: both would otherwise race to apply the migrations (they are locked, but slower)
    await waitReady(replicas[index].base);
    await waitSettled(replicas[index].base, child.pid, natsUp);
  }
  return { replicas, natsUp };
}

async function waitReady(base) {
  for (let i = 0; ; i += 1) {
    try {
      if ((await fetch(`${base}/ready`)).status === 200) return;
    } catch {
      /* starting */
    }
    if (i > 600) throw new Error('gatehouse did not become ready');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * /ready answers once the first worker serves; the others (WORKERS = cores with NATS) start after
 * it. Waits until the replica has all its workers (/metrics answers only when every worker does:
 * the primary collects each one's registry) and has gone quiet, so no worker's start-up is
 * charged to a measured run.
 */
async function waitSettled(base, pid, natsUp) {
  const workers = natsUp && os.availableParallelism() > 1 ? os.availableParallelism() : 0;
  const childCount = () => treePids(pid).length - 1;
  for (let i = 0; workers > 0; i += 1) {
    if (childCount() >= workers && (await fetch(`${base}/metrics`).catch(() => undefined))?.status === 200) break;
    if (i > 120) throw new Error('the replica did not start all its workers');
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  // time on a CPU plus time waiting for one (schedstat) of each process's main thread: on a busy
  // machine a starting process gets little CPU but keeps waiting for it, an idle one does neither
  const wantedMs = () =>
    treePids(pid).reduce((sum, process) => {
      try {
        const [run, wait] = fs.readFileSync(`/proc/${process}/task/${process}/schedstat`, 'utf8').split(' ').map(Number);
        return sum + (run + wait) / 1e6;
      } catch {
        return sum;
      }
    }, 0);
  // at most 10 s: with BENCH_PROFILE the profiler wakes every thread, which a busy machine keeps waiting
  for (let i = 0; i < 20; i += 1) {
    const before = wantedMs();
    await new Promise((resolve) => setTimeout(resolve, 500));
    if (wantedMs() - before < 50) return;
  }
}

function stopReplicas(replicas) {
  return stopChildren(replicas.map(({ child }) => child));
}

async function rotationChains(base, email, workers, pid, beforeRun) {
  const tokens = [];
  for (let i = 0; i < workers; i += 1) tokens.push((await post(base, '/v1/auth/signin', { email, password: PASSWORD })).json.refresh_token);
  await beforeRun();
  let failures = 0;
  const latencies = [];
  const deadline = Date.now() + DURATION * 1000;
  const result = await measured([pid], async () => {
    let rotations = 0;
    await Promise.all(
      tokens.map(async (initial) => {
        let token = initial;
        while (Date.now() < deadline) {
          const t0 = performance.now();
          const response = await post(base, '/v1/auth/refresh', { refresh_token: token });
          latencies.push(performance.now() - t0);
          if (response.status !== 200) {
            failures += 1;
            return;
          }
          token = response.json.refresh_token;
          rotations += 1;
        }
      }),
    );
    return rotations;
  });
  latencies.sort((x, y) => x - y);
  const pct = (q) =>
    latencies.length === 0 ? 'n/a' : latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))].toFixed(1);
  return { ...result, failures, p50: pct(0.5), p99: pct(0.99) };
}

/**
 * The rotation's compare-and-set alone: `workers` pg clients each spending its own chain with
 * one statement per rotation. refresh_rotate() when the schema has it (what Gatehouse calls),
 * otherwise the same compare-and-set, successor insert and session touch as one CTE statement.
 */
async function bareRotationLoop(dbUrl, email, workers) {
  const clients = [];
  for (let i = 0; i < workers; i += 1) {
    const client = new pg.Client({ connectionString: dbUrl });
    await client.connect();
    clients.push(client);
  }
  try {
    const [{ exists }] = (await clients[0].query(`SELECT to_regproc('refresh_rotate') IS NOT NULL AS exists`)).rows;
    const [{ id: userId }] = (await clients[0].query(`SELECT id FROM users WHERE email = $1`, [email])).rows;
    const hash = (token) => crypto.createHash('sha256').update(token).digest('base64url');
    const chains = [];
    for (let i = 0; i < workers; i += 1) {
      const sessionId = crypto.randomUUID();
      await clients[0].query(`INSERT INTO sessions (id, user_id, amr, expires_at) VALUES ($1, $2, '{pwd}', now() + interval '1 day')`, [
        sessionId,
        userId,
      ]);
      const token = crypto.randomBytes(32).toString('base64url');
      await clients[0].query(
        `INSERT INTO refresh_tokens (id, session_id, token_hash, expires_at) VALUES ($1, $2, $3, now() + interval '1 day')`,
        [crypto.randomUUID(), sessionId, hash(token)],
      );
      chains.push(hash(token));
    }
    const statement = exists
      ? `SELECT r_outcome AS outcome FROM refresh_rotate($1, $2, $3, $4, 1209600, 10)`
      : `WITH spent AS (
           UPDATE refresh_tokens SET spent_at = now(), successor_id = $2, successor_sealed = $4
           WHERE token_hash = $1 AND spent_at IS NULL RETURNING session_id, expires_at),
         successor AS (
           INSERT INTO refresh_tokens (id, session_id, token_hash, expires_at)
           SELECT $2, session_id, $3, expires_at FROM spent RETURNING session_id),
         touched AS (UPDATE sessions SET last_used_at = now() WHERE id IN (SELECT session_id FROM successor) RETURNING id)
         SELECT count(*) AS outcome FROM touched`;
    const deadline = Date.now() + DURATION * 1000;
    let failures = 0;
    const result = await measured([process.pid], async () => {
      let rotations = 0;
      await Promise.all(
        clients.map(async (client, index) => {
          let current = chains[index];
          while (Date.now() < deadline) {
            const next = crypto.randomBytes(32).toString('base64url');
            const { rows } = await client.query({
              name: 'bench-rotate',
              text: statement,
              values: [current, crypto.randomUUID(), hash(next), 'sealed'],
            });
            if (!(rows[0].outcome === 'issued' || rows[0].outcome === '1')) {
              failures += 1;
              return;
            }
            current = hash(next);
            rotations += 1;
          }
        }),
      );
      return rotations;
    });
    return { ...result, failures, statement: exists ? 'refresh_rotate()' : 'CTE' };
  } finally {
    await Promise.all(clients.map((client) => client.end()));
  }
}

/**
 * While `work` runs: PostgreSQL's side of the audit runs. CPU ms of the backends serving
 * `database` (plus the WAL writer), and what those backends wait on, sampled every 5 ms from
 * pg_stat_activity (a busy backend shows no wait event: "cpu").
 */
async function databaseSide(database, work) {
  const client = new pg.Client({ connectionString: PG_ADMIN });
  await client.connect();
  const backends = async () =>
    (
      await client.query(
        `SELECT pid FROM pg_stat_activity WHERE (datname = $1 AND pid <> pg_backend_pid()) OR backend_type = 'walwriter'`,
        [database],
      )
    ).rows.map((row) => row.pid);
  const start = new Map((await backends()).map((pid) => [pid, cpuMs(pid)]));
  const waits = new Map();
  let samples = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const { rows } = await client.query(
        `SELECT coalesce(wait_event_type || ':' || wait_event, 'cpu') AS wait, count(*)::int AS n FROM pg_stat_activity
          WHERE datname = $1 AND pid <> pg_backend_pid() AND state = 'active' GROUP BY 1`,
        [database],
      );
      samples += 1;
      for (const row of rows) waits.set(row.wait, (waits.get(row.wait) ?? 0) + row.n);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  try {
    const result = await work();
    sampling = false;
    await sampler;
    let cpu = 0;
    for (const pid of await backends()) cpu += cpuMs(pid) - (start.get(pid) ?? 0);
    const top = [...waits.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 6)
      .map(([wait, n]) => `${wait} ${(n / samples).toFixed(1)}`)
      .join(', ');
    return { ...result, pgCpuPerRequest: result.count > 0 ? cpu / result.count : NaN, waits: top };
  } finally {
    sampling = false;
    await sampler.catch(() => undefined);
    await client.end();
  }
}

/** POST /admin/tenants from `writers` loops spread over the replicas; each creates a new tenant. */
async function auditedMutations(replicas, writers, label) {
  const tokens = [];
  for (const replica of replicas) {
    const signin = await post(replica.base, '/v1/auth/signin', { email: ADMIN_EMAIL, password: PASSWORD });
    if (signin.status !== 200) throw new Error(`admin signin failed: ${signin.status} ${JSON.stringify(signin.json)}`);
    tokens.push(signin.json.access_token);
  }
  let failures = 0;
  let lastFailure = '';
  const deadline = Date.now() + DURATION * 1000;
  const result = await measured(
    replicas.map((replica) => replica.pid),
    async () => {
      let done = 0;
      await Promise.all(
        Array.from({ length: writers }, async (_, index) => {
          const replica = index % replicas.length;
          let n = 0;
          while (Date.now() < deadline) {
            n += 1;
            const id = `${label}-${index}-${n}`;
            const response = await post(replicas[replica].base, '/admin/tenants', { id, name: `Bench ${id}` }, tokens[replica]);
            if (response.status !== 201) {
              failures += 1;
              lastFailure = `${response.status} ${JSON.stringify(response.json)}`;
              continue;
            }
            done += 1;
          }
        }),
      );
      return done;
    },
  );
  return { ...result, failures, lastFailure };
}

const MASTER_KEY = crypto.randomBytes(32).toString('base64');
const ADMIN_EMAIL = 'bench-admin@example.com';
/** Gatehouse's pool size on PostgreSQL (src/database/database.module.ts): the bare loop gets as many clients. */
const POOL_SIZE = 10;

function rate(result, digits = 1) {
  return `${result.rate.toFixed(digits)} /s`;
}

function cpu(result) {
  return `cpu ${result.cpuPerRequest.toFixed(2)} ms/req`;
}

async function main() {
  const database = `bench_${crypto.randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${database}`);
  const dbUrl = new URL(PG_ADMIN);
  dbUrl.pathname = `/${database}`;
  let replicas = [];
  try {
    const started = await startReplicas(1, dbUrl.toString());
    replicas = started.replicas;
    const [{ base, pid }] = replicas;
    const first = replicas[0];
    console.log(`Gatehouse bench — ${os.cpus().length} cores, ${DURATION}s per run, PostgreSQL${started.natsUp ? ' + NATS' : ''}\n`);

    const email = `bench-${Date.now()}@example.com`;
    const signup = await post(base, '/v1/auth/signup', { email, password: PASSWORD });
    if (signup.status !== 201) throw new Error(`signup failed: ${signup.status}`);

    if (ONLY.has('signin')) {
      const ceiling = await argonCeiling();
      line('argon2id verify (bare, 4 in flight)', rate(ceiling), `m=19456 t=2 p=1, ${cpu(ceiling)} (bench process)`);

      const signinRequest = {
        connections: Number(process.env.BENCH_SIGNIN_CONNECTIONS ?? 16),
        url: `${base}/v1/auth/signin`,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email, password: PASSWORD }),
      };
      // unmeasured warm-up: every worker's hashing threads started, the code paths compiled
      await cannon({ ...signinRequest, duration: 2 });
      // what the replica's main threads spend with no traffic (timers, publishers, pollers): a
      // sign-in run is charged its share of it. First the warm-up's queued sign-ins finish.
      for (let i = 0, last = -1; i < 50; i += 1) {
        const hashing = threadCpuMs(pid).get('worker threads (argon2)') ?? 0;
        if (hashing === last) break;
        last = hashing;
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
      const idle0 = threadCpuMs(pid).get('main thread') ?? 0;
      await new Promise((resolve) => setTimeout(resolve, 3000));
      line('  Gatehouse idle, main threads', `${(((threadCpuMs(pid).get('main thread') ?? 0) - idle0) / 3).toFixed(1)} ms CPU per second`);
      await statements(first);
      const backends = await backendPids(admin, database);
      const threads0 = threadCpuMs(pid);
      const backends0 = backends.reduce((sum, backend) => sum + cpuMs(backend), 0);
      const client0 = process.cpuUsage();
      const stopPerf = perfRecord([...treePids(pid), ...backends]);
      let signin;
      const signinRun = await measured([pid], async () => {
        signin = await cannon(signinRequest);
        return signin['2xx'];
      });
      await stopPerf();
      line(
        'POST /v1/auth/signin',
        rate(signinRun),
        `p50 ${signin.latency.p50} ms, p99 ${signin.latency.p99} ms, non-2xx ${signin.non2xx}, ${cpu(signinRun)} (2xx only)`,
      );
      line('  signin / bare argon2 ratio', (signinRun.rate / ceiling.rate).toFixed(2), `(goal >= 0.9)`);
      line('  signin CPU / bare verify CPU', (signinRun.cpuPerRequest / ceiling.cpuPerRequest).toFixed(2), 'hashes per sign-in');
      // where each sign-in's CPU went, in ms and in bare verifications: Gatehouse by thread kind,
      // the database's backends (pool connections open before the run), the load generator
      const client = process.cpuUsage(client0);
      const per = (ms) =>
        `${(ms / Math.max(signinRun.count, 1)).toFixed(2)} ms = ${(ms / Math.max(signinRun.count, 1) / ceiling.cpuPerRequest).toFixed(2)}`;
      const threads = threadCpuMs(pid);
      const parts = [...threads.entries()].map(([kind, ms]) => [kind, ms - (threads0.get(kind) ?? 0)]);
      parts.push(['PostgreSQL backends', backends.reduce((sum, backend) => sum + cpuMs(backend), 0) - backends0]);
      parts.push(['bench client (autocannon)', (client.user + client.system) / 1000]);
      console.log(
        `  CPU per sign-in (ms = bare verifications):${parts.map(([kind, ms]) => `\n      ${kind.padEnd(28)} ${per(ms)}`).join('')}`,
      );
      // the bound this machine sets: the bare loop keeps every core hashing, so the sign-in's
      // other work comes out of the hash's CPU. Even with Gatehouse's own threads at zero
      // besides the hash, PostgreSQL's share and the load generator's remain
      const perSignin = (kind) => (parts.find(([name]) => name === kind)?.[1] ?? 0) / Math.max(signinRun.count, 1) / ceiling.cpuPerRequest;
      const outside = perSignin('PostgreSQL backends') + perSignin('bench client (autocannon)');
      line(
        '  ratio bound with Gatehouse free beyond the hash',
        (1 / (perSignin('worker threads (argon2)') + outside)).toFixed(2),
        `(1 / (argon2 threads + PostgreSQL + load generator), in bare verifications; ${os.availableParallelism()} cores, 4 in flight)`,
      );
      const signinStatements = await statements(first, signinRun.count);
      if (signinStatements) console.log(`  statements per sign-in: ${signinStatements}`);
    }

    if (ONLY.has('me')) {
      let me;
      const meRun = await measured([pid], async () => {
        me = await cannon({ url: `${base}/v1/auth/me`, headers: { authorization: `Bearer ${signup.json.access_token}` } });
        return me.requests.total;
      });
      line('GET /v1/auth/me', rate(meRun, 0), `p50 ${me.latency.p50} ms, p99 ${me.latency.p99} ms, ${cpu(meRun)}`);
      const meStatements = await statements(first, meRun.count);
      if (meStatements) console.log(`  statements per /me: ${meStatements}`);
    }

    for (const workers of ONLY.has('refresh') ? [16, 64] : []) {
      const app = await rotationChains(base, email, workers, pid, () => statements(first));
      const rotationStatements = await statements(first, app.count);
      const bare = await bareRotationLoop(dbUrl.toString(), email, Math.min(workers, POOL_SIZE));
      line(
        `POST /v1/auth/refresh (${workers} chains)`,
        rate(app),
        `p50 ${app.p50} ms, p99 ${app.p99} ms, failures ${app.failures}, ${cpu(app)}`,
      );
      line(`  bare pg loop, ${bare.statement}, ${Math.min(workers, POOL_SIZE)} clients`, rate(bare), `failures ${bare.failures}`);
      line(`  rotation / bare pg ratio (${workers} chains)`, (app.rate / bare.rate).toFixed(2));
      if (rotationStatements) console.log(`  statements per rotation: ${rotationStatements}`);
    }
    await stopReplicas(replicas);

    const writers = 32;
    const results = {};
    for (const plain of ONLY.has('audit') ? [false, true] : []) {
      const label = plain ? 'plain' : 'chained';
      // plain records get positive seqs past the chain's, so the publisher sends them to JetStream
      // as it sends chained ones (AuditRepository.appendPlain): both runs pay for publishing
      if (plain) {
        const benchDb = new pg.Client({ connectionString: dbUrl.toString() });
        await benchDb.connect();
        await benchDb.query('CREATE SEQUENCE IF NOT EXISTS audit_bench_plain_seq START 1000000000000');
        await benchDb.end();
      }
      ({ replicas } = await startReplicas(2, dbUrl.toString(), plain ? { BENCH_AUDIT_PLAIN_INSERT: 'true' } : {}));
      await statements(replicas[0]);
      results[label] = await databaseSide(database, () => auditedMutations(replicas, writers, label));
      const auditStatements = await statements(replicas[0], results[label].count / replicas.length);
      await stopReplicas(replicas);
      const result = results[label];
      line(
        `POST /admin/tenants, ${writers} writers, 2 replicas, ${plain ? 'plain insert' : 'chained audit'}`,
        rate(result),
        `failures ${result.failures}${result.failures ? ` (${result.lastFailure})` : ''}, ${cpu(result)}`,
      );
      line('  PostgreSQL CPU (backends + WAL writer)', `${result.pgCpuPerRequest.toFixed(2)} ms/req`);
      line('  backends active, mean per sample', result.waits || 'none');
      if (auditStatements) console.log(`  statements per mutation (replica 1): ${auditStatements}`);
    }
    if (ONLY.has('audit')) line('  chained / plain ratio', (results.chained.rate / results.plain.rate).toFixed(2), '(goal >= 0.8)');
  } finally {
    await stopReplicas(replicas);
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await admin.end();
  }
}

// exit once printed: a replica's leftover socket must not keep the bench waiting
main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
