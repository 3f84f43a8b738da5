#!/usr/bin/env node
'use strict';
/*
 * node scripts/heap-profile-top.js <file.heapprofile> [requests] [frames]
 * Bytes sampled per allocating function (self) and per call path of `frames` frames (default 4),
 * per request when the number of requests is given. For profiles written by scripts/gc-probe.js
 * (GC_PROBE_HEAP_PROFILE), which sample collected objects too: that is, every allocation.
 */
const fs = require('node:fs');

const [file, requestsArg, framesArg] = process.argv.slice(2);
const profile = JSON.parse(fs.readFileSync(file, 'utf8'));
const requests = Number(requestsArg ?? 1);
const depth = Number(framesArg ?? 4);

const name = (frame) => {
  const where = frame.url
    .replace(/^.*\/node_modules\//, '')
    .replace(/^.*\/dist\//, 'dist/')
    .replace(/^node:/, '');
  return `${frame.functionName || '(anonymous)'} ${where}:${frame.lineNumber + 1}`;
};
const self = new Map();
const paths = new Map();
let total = 0;
const walk = (node, stack) => {
  const here = [...stack, name(node.callFrame)];
  // selfSize: the samples scaled to an estimate of every byte allocated there
  const bytes = node.selfSize;
  if (bytes > 0) {
    total += bytes;
    self.set(here.at(-1), (self.get(here.at(-1)) ?? 0) + bytes);
    const key = here.slice(-depth).reverse().join(' < ');
    paths.set(key, (paths.get(key) ?? 0) + bytes);
  }
  for (const child of node.children) walk(child, here);
};
walk(profile.head, []);
const show = (title, map, count) => {
  console.log(`\n${title} (bytes${requests > 1 ? ' per request' : ''}, of ${(total / requests).toFixed(0)})`);
  for (const [key, bytes] of [...map].sort((a, b) => b[1] - a[1]).slice(0, count)) {
    console.log(`${(bytes / requests).toFixed(0).padStart(8)}  ${key}`);
  }
};
show('allocating function', self, 40);
show(`call path (${depth} frames)`, paths, 40);
