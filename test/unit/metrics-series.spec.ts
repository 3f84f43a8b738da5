import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { counterSeries, histogramSeries } from '../../src/observability/metrics.service';

function metricsPair() {
  const registry = new Registry();
  const counter = new Counter({ name: 'c_total', help: 'c', labelNames: ['route', 'status'] as const, registers: [registry] });
  const histogram = new Histogram({
    name: 'h_seconds',
    help: 'h',
    labelNames: ['route'] as const,
    buckets: [0.001, 0.01, 0.1],
    registers: [registry],
  });
  return { registry, counter, histogram };
}

describe('hot-path metric series', () => {
  it('export exactly what prom-client’s own inc and observe export, also after a reset', async () => {
    const values = [0.0005, 0.002, 0.05, 0.5, 0.001, 0.1];
    const plain = metricsPair();
    const fast = metricsPair();
    const requests = counterSeries(fast.counter, { route: '/a', status: '200' });
    const durations = histogramSeries(fast.histogram, { route: '/a' });
    for (const value of values) {
      plain.counter.inc({ route: '/a', status: '200' });
      plain.histogram.observe({ route: '/a' }, value);
      requests.inc();
      durations.observe(value);
    }
    // a series of other labels on the same metric is not touched
    plain.counter.inc({ route: '/b', status: '404' });
    fast.counter.inc({ route: '/b', status: '404' });
    expect(await fast.registry.metrics()).toBe(await plain.registry.metrics());

    plain.registry.resetMetrics();
    fast.registry.resetMetrics();
    for (const value of values.slice(0, 3)) {
      plain.counter.inc({ route: '/a', status: '200' });
      plain.histogram.observe({ route: '/a' }, value);
      requests.inc();
      durations.observe(value);
    }
    expect(await fast.registry.metrics()).toBe(await plain.registry.metrics());
  });
});
