'use strict';
/*
 * node --require ./scripts/stall-probe.js dist/main.js   (e.g. BENCH_GATEHOUSE_NODE_ARGS="--require scripts/stall-probe.js")
 * Records the main thread's stalls (a 1 ms interval firing more than STALL_MS, 8 by default,
 * late) with the thread's CPU time during each (busy: it was running something; idle: it was
 * not scheduled), and samples a CPU profile; at SIGTERM or exit it writes each stall with the
 * profile's top stacks inside it to STALL_OUT (/tmp/stall-<pid>.json).
 */
const fs = require('node:fs');
const inspector = require('node:inspector');
const { performance } = require('node:perf_hooks');
const OUT = process.env.STALL_OUT || `/tmp/stall-${process.pid}.json`;
const THRESHOLD = Number(process.env.STALL_MS || 8);
const stalls = [];
let last = performance.now();
let lastCpu = process.cpuUsage();
let lastThreadCpu = process.threadCpuUsage ? process.threadCpuUsage() : undefined;
const timer = setInterval(() => {
  const now = performance.now();
  const gap = now - last;
  const cpu = process.cpuUsage();
  const thread = process.threadCpuUsage ? process.threadCpuUsage() : undefined;
  if (gap > THRESHOLD) {
    stalls.push({
      start: last,
      end: now,
      gap,
      procCpuMs: (cpu.user - lastCpu.user + cpu.system - lastCpu.system) / 1000,
      threadCpuMs: thread ? (thread.user - lastThreadCpu.user + thread.system - lastThreadCpu.system) / 1000 : undefined,
    });
  }
  last = now;
  lastCpu = cpu;
  lastThreadCpu = thread;
}, 1);
timer.unref();
const session = new inspector.Session();
session.connect();
let t0;
session.post('Profiler.enable', () =>
  session.post('Profiler.setSamplingInterval', { interval: 250 }, () =>
    session.post('Profiler.start', () => {
      t0 = performance.now();
    }),
  ),
);
let written = false;
function finish(cb) {
  if (written) return cb && cb();
  written = true;
  session.post('Profiler.stop', (err, { profile } = {}) => {
    const report = { stalls: stalls.length, list: [] };
    if (!err && profile) {
      const byId = new Map(profile.nodes.map((n) => [n.id, n]));
      const parent = new Map();
      for (const n of profile.nodes) for (const c of n.children || []) parent.set(c, n.id);
      const times = [];
      let t = 0;
      for (const d of profile.timeDeltas) {
        t += d;
        times.push(t0 + t / 1000);
      }
      for (const s of stalls) {
        const counts = new Map();
        let n = 0;
        for (let i = 0; i < times.length; i++) {
          if (times[i] < s.start || times[i] > s.end) continue;
          n++;
          // top self frame and a short stack
          let id = profile.samples[i];
          const frames = [];
          while (id !== undefined && frames.length < 6) {
            const node = byId.get(id);
            const cf = node.callFrame;
            frames.push(`${cf.functionName || '(anon)'} ${cf.url.split('/').slice(-2).join('/')}:${cf.lineNumber}`);
            id = parent.get(id);
          }
          const key = frames.join(' < ');
          counts.set(key, (counts.get(key) || 0) + 1);
        }
        report.list.push({ ...s, samples: n, top: [...counts].sort((a, b) => b[1] - a[1]).slice(0, 5) });
      }
    }
    fs.writeFileSync(OUT, JSON.stringify(report, null, 1));
    cb && cb();
  });
}
process.on('SIGTERM', () => finish(() => {}));
process.on('exit', () => {
  if (!written) {
    try {
      finish();
    } catch {}
  }
});
