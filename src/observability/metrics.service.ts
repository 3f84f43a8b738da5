import { Injectable } from '@nestjs/common';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type LabelValues } from 'prom-client';
import { readBuildInfo } from './build-info';
import { ReplicaMetrics } from './replica-metrics';

/** How often the event-loop delay histogram (gatehouse_nodejs_eventloop_lag_*) takes a sample. */
const EVENT_LOOP_SAMPLE_MS = 20;

/** One registry per app instance (tests boot several in one process). */
@Injectable()
export class MetricsService {
  readonly registry = new Registry();
  /** what `/metrics` answers: this process, or every process of the replica (WORKERS > 1) */
  readonly replica = new ReplicaMetrics(this.registry);

  readonly httpRequests = new Counter({
    name: 'gatehouse_http_requests_total',
    help: 'HTTP requests by method, route template and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });

  readonly httpDuration = new Histogram({
    name: 'gatehouse_http_request_duration_seconds',
    help: 'HTTP request duration',
    labelNames: ['method', 'route'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly authFailures = new Counter({
    name: 'gatehouse_auth_failures_total',
    help: 'Authentication failures by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly upstreamRequests = new Counter({
    name: 'gatehouse_upstream_requests_total',
    help: 'Upstream calls by service kind and outcome',
    labelNames: ['service_kind', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly routingMisses = new Counter({
    name: 'gatehouse_routing_misses_total',
    help: 'Requests for tenants without placement',
    registers: [this.registry],
  });

  readonly rateLimited = new Counter({
    name: 'gatehouse_rate_limited_total',
    help: 'Requests refused by a traffic or abuse limit, by scope (tenant, principal, ip_in_flight, ws_message, account, ip) and route class',
    labelNames: ['scope', 'route_class'] as const,
    registers: [this.registry],
  });

  readonly refreshReuseDetected = new Counter({
    name: 'gatehouse_refresh_reuse_detected_total',
    help: 'Refresh token families revoked for reuse',
    registers: [this.registry],
  });

  readonly wsConnections = new Gauge({
    name: 'gatehouse_ws_connections',
    help: 'Open WebSocket subscriptions',
    registers: [this.registry],
  });

  readonly retentionPrunedRows = new Counter({
    name: 'gatehouse_retention_pruned_rows_total',
    help: 'Rows deleted by the retention job, by table',
    labelNames: ['table'] as const,
    registers: [this.registry],
  });

  readonly retentionRuns = new Counter({
    name: 'gatehouse_retention_runs_total',
    help: 'Retention rounds by outcome (ok, skipped: another replica held the lock, failed)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly buildInfo = new Gauge({
    name: 'gatehouse_build_info',
    help: 'Always 1; the labels name the running build',
    labelNames: ['version', 'commit', 'node'] as const,
    registers: [this.registry],
    // the same 1 in every process of a replica
    aggregator: 'first',
  });

  readonly policyDecisions = new Counter({
    name: 'gatehouse_policy_decisions_total',
    help: 'Policy hook (POLICY_URL) decisions by outcome: allow, deny, error (PDP down, slow or malformed)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly policyDuration = new Histogram({
    name: 'gatehouse_policy_decision_duration_seconds',
    help: 'Time to get a decision from the policy decision point (cache misses only)',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });

  readonly dependencyErrors = new Counter({
    name: 'gatehouse_dependency_errors_total',
    help: 'Requests answered 503 unavailable because a dependency (database, nats) failed',
    labelNames: ['dependency'] as const,
    registers: [this.registry],
  });

  constructor() {
    // One prefix for everything (CONTRACT §14): process_* and nodejs_* become gatehouse_process_*
    // and gatehouse_nodejs_*; the event-loop delay is gatehouse_nodejs_eventloop_lag_*_seconds.
    // The event-loop delay is sampled every EVENT_LOOP_SAMPLE_MS (prom-client's default of 10 ms
    // woke an idle replica 100 times a second, half of its idle CPU): any stall longer than that
    // is recorded in full, far below the 200 ms p99 the alert watches.
    collectDefaultMetrics({ register: this.registry, prefix: 'gatehouse_', eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    // prom-client names these gauges *_total, which Prometheus reserves for counters; the
    // same numbers stay available per type in gatehouse_nodejs_active_{handles,requests,resources}.
    for (const name of ['active_handles_total', 'active_requests_total', 'active_resources_total']) {
      this.registry.removeSingleMetric(`gatehouse_nodejs_${name}`);
    }
    const build = readBuildInfo();
    this.buildInfo.set({ version: build.version, commit: build.commit, node: process.version }, 1);
  }
}

/** prom-client 15's storage of a labelled series (what `get()` exports): read through these two shapes only. */
interface StoredCounter {
  labels: LabelValues<string>;
  value: number;
}
interface StoredHistogram {
  labels: LabelValues<string>;
  bucketValues: Record<number, number>;
  sum: number;
  count: number;
}
interface SeriesStore<T> {
  hashMap: Record<string, T>;
}

function sameLabels(a: LabelValues<string>, b: LabelValues<string>): boolean {
  const keys = Object.keys(b);
  return Object.keys(a).length === keys.length && keys.every((key) => String(a[key]) === String(b[key]));
}

/**
 * The stored series of `labels`, made by one call through prom-client's API and then found
 * again only when the metric was reset (its store replaced).
 */
function storedSeries<T extends { labels: LabelValues<string> }>(
  metric: object,
  labels: LabelValues<string>,
  create: () => void,
): () => T | undefined {
  const store = metric as SeriesStore<T>;
  let map: Record<string, T> | undefined;
  let entry: T | undefined;
  return () => {
    if (store.hashMap !== map || entry === undefined) {
      create();
      map = store.hashMap;
      entry = Object.values(map).find((candidate) => sameLabels(candidate.labels, labels));
      return undefined;
    }
    return entry;
  };
}

/**
 * A counter series for the hot path: prom-client's labelled child validates and hashes its
 * labels on every `inc`; this one adds to the stored series directly once it exists (the
 * exported value is the same: prom-client reads it from its store at scrape time).
 */
export function counterSeries(counter: Counter<string>, labels: LabelValues<string>): { inc(): void } {
  const stored = storedSeries<StoredCounter>(counter, labels, () => counter.inc(labels));
  return {
    inc() {
      const entry = stored();
      if (entry !== undefined) entry.value += 1;
    },
  };
}

/** The same for a histogram series: the value's bucket, sum and count, as prom-client's `observe` adds them. */
export function histogramSeries(histogram: Histogram<string>, labels: LabelValues<string>): { observe(value: number): void } {
  const bounds = (histogram as unknown as { upperBounds: number[] }).upperBounds;
  let pending = 0;
  const stored = storedSeries<StoredHistogram>(histogram, labels, () => histogram.observe(labels, pending));
  return {
    observe(value: number) {
      pending = value;
      const entry = stored();
      if (entry === undefined) return;
      entry.sum += value;
      entry.count += 1;
      for (const bound of bounds) {
        if (value <= bound) {
          entry.bucketValues[bound]! += 1;
          return;
        }
      }
    },
  };
}
