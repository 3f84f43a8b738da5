#!/usr/bin/env node
'use strict';
/*
 * node scripts/bench-admission.js N      (after `npm run build`)
 *
 * N admissions of one proxied call (tenant, principal and in-flight scopes on, limits high)
 * through TrafficLimitGuard.admitNow and their release, nothing else: the input of an
 * instruction count that does not depend on the machine's load, e.g.
 *   valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.0 node scripts/bench-admission.js 0
 *   valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.n node scripts/bench-admission.js 20000
 * (instructions per admission = difference of the two "Collected" totals / 20000; it includes
 * the JIT's compiling of the admission, so it is an upper bound).
 */
const os = require('node:os');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
require('reflect-metadata');
const dist = (name) => require(path.join(ROOT, 'dist', 'limits', name));
const { TrafficLimitGuard } = dist('traffic-limit.guard.js');
const { TokenBucketStorage } = dist('token-bucket.storage.js');
const { InFlightCounter } = dist('in-flight.counter.js');
const { LimitPolicies } = dist('limit-policies.service.js');
const { loadConfig } = require(path.join(ROOT, 'dist', 'config', 'config.js'));

const config = loadConfig({
  DATA_DIR: os.tmpdir(),
  TENANT_RATE_LIMIT: '100000000/60s',
  PRINCIPAL_RATE_LIMIT: '100000000/60s',
  IP_IN_FLIGHT_LIMIT: '100000',
});
const guard = new TrafficLimitGuard(
  { throttlers: [] },
  new TokenBucketStorage(),
  { get() {} },
  new LimitPolicies(config),
  new InFlightCounter(),
  { rateLimited: { inc() {} } },
);
const input = {
  routeClass: 'query',
  principalId: '0b7c1f9e-5d7a-4c55-9a51-3f6d2b1c9e11',
  tenantId: 'acme',
  clientIp: '127.0.0.1',
  holdsSlot: true,
};
const calls = Number(process.argv[2] ?? 20000);
for (let i = 0; i < calls; i += 1) guard.admitNow(input, undefined).release();
