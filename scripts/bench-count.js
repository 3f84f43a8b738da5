'use strict';
/*
 * Benchmark only (BENCH_PROFILE, see scripts/bench.js): preloaded into Gatehouse with --require,
 * it counts the statements sent through `pg` (what pg_stat_statements would say, but per
 * process and without a server restart) and serves the counts since the last read on
 * http://127.0.0.1:<port in BENCH_COUNT_DIR/<pid>>/ as JSON { total, byStatement }.
 */
const http = require('node:http');
const path = require('node:path');

const pg = require(require.resolve('pg', { paths: [path.join(__dirname, '..')] }));
let counts = new Map();
const originalQuery = pg.Client.prototype.query;
pg.Client.prototype.query = function countedQuery(config, ...rest) {
  const text = typeof config === 'string' ? config : (config?.text ?? '');
  const key = text.replace(/\s+/g, ' ').trim().slice(0, 90);
  counts.set(key, (counts.get(key) ?? 0) + 1);
  return originalQuery.call(this, config, ...rest);
};

const dir = process.env.BENCH_COUNT_DIR;
// With WORKERS (node:cluster) the app runs in the workers, which inherit --require: each worker
// serves its own counts on a port of its own (exclusive, not the cluster's shared listener) and
// writes that port to BENCH_COUNT_DIR/<pid>; a primary serves them only when it has forked no
// worker after start-up.
const cluster = require('node:cluster');
const fs = require('node:fs');
const serve = () => {
  const server = http
    .createServer((request, response) => {
      const byStatement = Object.fromEntries([...counts.entries()].sort((a, b) => b[1] - a[1]));
      const total = [...counts.values()].reduce((sum, n) => sum + n, 0);
      counts = new Map();
      response.setHeader('content-type', 'application/json');
      response.end(JSON.stringify({ total, byStatement }));
    })
    .listen({ port: 0, host: '127.0.0.1', exclusive: true }, () =>
      fs.writeFileSync(path.join(dir, String(process.pid)), String(server.address().port)),
    );
  server.unref();
};
// worker threads (the argon2 threads) inherit --require too; they send no SQL and must not
// overwrite their process's port file
if (dir && require('node:worker_threads').isMainThread) {
  if (cluster.isWorker) serve();
  else setTimeout(() => Object.keys(cluster.workers ?? {}).length === 0 && serve(), 3000).unref();
}
