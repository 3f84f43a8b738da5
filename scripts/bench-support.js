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

module.exports = { sleep, freePort, waitForPort, waitForReady };
