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
const { admissionBench } = require('./bench-support');

const { guard, input } = admissionBench();
const calls = Number(process.argv[2] ?? 20000);
for (let i = 0; i < calls; i += 1) guard.admitNow(input, undefined).release();
