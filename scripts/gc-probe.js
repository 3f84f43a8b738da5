'use strict';
/*
 * node --require ./scripts/gc-probe.js dist/main.js   (loaded by scripts/bench-proxy.js into the processes it measures)
 *
 * Garbage collection inside a measured window, from the process itself (v8.GCProfiler: heap
 * statistics before and after every collection): the first SIGUSR2 opens a window, the next one
 * closes it and writes a summary as JSON to GC_PROBE_FILE. Bytes allocated are what the heap
 * grew by between collections (V8's own `allocated` of --trace-gc-nvp), pauses are the main
 * thread's time in each collection. Nothing is printed, so the process's stdout stays its own.
 */
const fs = require('node:fs');
const v8 = require('node:v8');

const file = process.env.GC_PROBE_FILE;
let window;

function spaceUsed(stats, name) {
  return stats.heapSpaceStatistics.find((space) => space.spaceName === name)?.spaceUsedSize ?? 0;
}

function summarise({ profiler, startedAt, usedAtStart }) {
  const result = profiler.stop();
  const usedAtEnd = v8.getHeapStatistics().used_heap_size;
  const seconds = (performance.now() - startedAt) / 1000;
  const collections = [];
  let usedAfterPrevious = usedAtStart;
  let allocated = 0;
  for (const entry of result.statistics) {
    const before = entry.beforeGC.heapStatistics.usedHeapSize;
    const after = entry.afterGC.heapStatistics.usedHeapSize;
    const grown = Math.max(0, before - usedAfterPrevious);
    allocated += grown;
    usedAfterPrevious = after;
    collections.push({
      type: entry.gcType,
      pauseMs: entry.cost / 1000,
      allocated: grown,
      // what a scavenge moved to the old generation (objects that outlived two scavenges)
      promoted: Math.max(0, spaceUsed(entry.afterGC, 'old_space') - spaceUsed(entry.beforeGC, 'old_space')),
      newSpaceBytes: entry.beforeGC.heapSpaceStatistics.find((space) => space.spaceName === 'new_space')?.spaceSize ?? 0,
    });
  }
  allocated += Math.max(0, usedAtEnd - usedAfterPrevious);
  return { seconds, allocated, collections, rssBytes: process.memoryUsage.rss() };
}

// GC_PROBE_HEAP_PROFILE=<file>: the window also samples where the bytes were allocated (collected
// objects included), as a .heapprofile for Chrome DevTools or scripts/heap-profile-top.js
const heapProfileFile = process.env.GC_PROBE_HEAP_PROFILE;
let session;

if (file !== undefined) {
  // SIGWINCH (unused by a server without a terminal): a full collection, then `<file>.full` says
  // it is done, so a measurement can read the RSS of what is alive rather than of what is not yet
  // collected (the bench's idle-socket RSS)
  process.on('SIGWINCH', () => {
    v8.setFlagsFromString('--expose-gc');
    require('node:vm').runInNewContext('gc')();
    fs.writeFileSync(`${file}.full`, JSON.stringify({ rssBytes: process.memoryUsage.rss() }));
  });
  process.on('SIGUSR2', () => {
    if (window === undefined) {
      if (heapProfileFile !== undefined) {
        const inspector = require('node:inspector');
        session ??= new inspector.Session();
        session.connect();
        session.post('HeapProfiler.enable');
        session.post('HeapProfiler.startSampling', {
          samplingInterval: 1024,
          // GC_PROBE_HEAP_LIVE=1: only what is still alive when the window closes (what outlives a
          // request); GC_PROBE_HEAP_LIVE=promoted: that and what a mark-compact collected, i.e. what
          // outlived the scavenges (promoted) and died in the old generation
          includeObjectsCollectedByMajorGC: process.env.GC_PROBE_HEAP_LIVE !== '1',
          includeObjectsCollectedByMinorGC: process.env.GC_PROBE_HEAP_LIVE === undefined || process.env.GC_PROBE_HEAP_LIVE === '0',
        });
      }
      const profiler = new v8.GCProfiler();
      profiler.start();
      window = { profiler, startedAt: performance.now(), usedAtStart: v8.getHeapStatistics().used_heap_size };
      return;
    }
    const closed = window;
    window = undefined;
    const summary = summarise(closed);
    if (heapProfileFile === undefined) {
      fs.writeFileSync(file, JSON.stringify(summary));
      return;
    }
    session.post('HeapProfiler.stopSampling', (error, result) => {
      if (error === null) fs.writeFileSync(heapProfileFile, JSON.stringify(result.profile));
      session.disconnect();
      fs.writeFileSync(file, JSON.stringify(summary));
    });
  });
}
