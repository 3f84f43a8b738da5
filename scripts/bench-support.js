'use strict';
/* Helpers the benchmark scripts share: ports, waiting for a listener, waiting for Gatehouse. */
const net = require('node:net');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A TCP port free on 127.0.0.1 right now. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Resolves true once something accepts connections on `port` (false after ~10 s). */
async function waitForPort(port) {
  for (let i = 0; i < 200; i += 1) {
    const open = await new Promise((resolve) =>
      net
        .connect(port, '127.0.0.1')
        .once('connect', function () {
          this.destroy();
          resolve(true);
        })
        .once('error', () => resolve(false)),
    );
    if (open) return true;
    await sleep(50);
  }
  return false;
}

/** Waits until Gatehouse at `base` answers /ready 200; throws if `child` exits or after ~60 s. */
async function waitForReady(base, child) {
  for (let i = 0; ; i += 1) {
    try {
      if ((await fetch(`${base}/ready`)).status === 200) return;
    } catch {
      /* starting */
    }
    if (child.exitCode !== null) throw new Error(`gatehouse exited with ${child.exitCode}`);
    if (i > 600) throw new Error('gatehouse did not become ready');
    await sleep(100);
  }
}

/** SIGTERM to each child still running, then waits until each has exited (at most 10 s each; a --cpu-prof profile is written on the way out). */
function stopChildren(children) {
  return Promise.all(
    children.map(
      (child) =>
        new Promise((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const timer = setTimeout(resolve, 10_000);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    ),
  );
}

/**
 * The §9 admission of one proxied call (tenant, principal and in-flight scopes on, limits high)
 * from the built dist/, in this process: the guard and the input it admits, for
 * scripts/bench-admission.js (instruction counts) and scripts/bench-proxy.js (CPU per admission).
 */
function admissionBench() {
  const path = require('node:path');
  const os = require('node:os');
  require('reflect-metadata');
  const root = path.join(__dirname, '..');
  const dist = (name) => require(path.join(root, 'dist', 'limits', name));
  const { TrafficLimitGuard } = dist('traffic-limit.guard.js');
  const { TokenBucketStorage } = dist('token-bucket.storage.js');
  const { InFlightCounter } = dist('in-flight.counter.js');
  const { LimitPolicies } = dist('limit-policies.service.js');
  const { loadConfig } = require(path.join(root, 'dist', 'config', 'config.js'));
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
  return { guard, input };
}

/**
 * The node flags production runs Gatehouse with: those of `npm start` (package.json), which the
 * Dockerfile's CMD repeats (test/e2e/swarm-stack.spec.ts checks they match). Every benchmark
 * starts Gatehouse with them, so it measures what is deployed.
 */
function productionNodeArgs() {
  const start = require('../package.json').scripts.start.split(' ');
  return start.slice(1, start.indexOf('dist/main.js'));
}

module.exports = { sleep, freePort, waitForPort, waitForReady, stopChildren, admissionBench, productionNodeArgs };
