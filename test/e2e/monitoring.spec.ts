import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { http } from '../support/http';
import { spawnGatehouse, type GatehouseProcess } from '../support/process';
import { promtool, promtoolAvailable } from '../support/promtool';
import { NATS_URL, servicesAvailable } from '../support/services';

/*
 * The monitoring pack under swarm/: the alert rules pass `promtool check rules`, the
 * monitoring stack passes `docker stack config`, and every metric a dashboard panel or an alert
 * rule queries is one a running Gatehouse exports. "Exported" is read from the scrape's
 * `# TYPE` lines: prom-client writes HELP/TYPE for every registered metric, also for a
 * labelled counter that has no sample yet (refresh reuse, circuit open), so the check covers
 * metrics that need an event without staging each event.
 */

const ROOT = path.resolve(__dirname, '..', '..');
const MONITORING = path.join(ROOT, 'swarm', 'monitoring');
const RULES_FILE = path.join(MONITORING, 'prometheus', 'alerts.yml');
const DASHBOARD_FILE = path.join(MONITORING, 'grafana', 'dashboards', 'gatehouse.json');
const STACK_FILE = path.join(ROOT, 'swarm', 'stacks', 'monitoring.yml');

interface Dashboard {
  uid: string;
  panels: { title: string; datasource: { uid: string }; targets: { expr: string }[] }[];
}
interface Rules {
  groups: { name: string; rules: { alert: string; expr: string }[] }[];
}

const dashboard = JSON.parse(fs.readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard;
const rules = parse(fs.readFileSync(RULES_FILE, 'utf8')) as Rules;

/** Metric names in a PromQL expression; histogram series map to their family name. */
function metricsOf(expr: string): string[] {
  return [...expr.matchAll(/\bgatehouse_[a-z0-9_]+/g)].map((match) => match[0].replace(/_(bucket|sum|count)$/, ''));
}

const queried = new Map<string, string[]>();
for (const panel of dashboard.panels) {
  for (const target of panel.targets) {
    for (const name of metricsOf(target.expr)) queried.set(name, [...(queried.get(name) ?? []), `panel "${panel.title}"`]);
  }
}
for (const group of rules.groups) {
  for (const rule of group.rules) {
    for (const name of metricsOf(rule.expr)) queried.set(name, [...(queried.get(name) ?? []), `alert ${rule.alert}`]);
  }
}

describe('monitoring files', () => {
  it.runIf(promtoolAvailable())('alert rules pass promtool check rules', () => {
    const result = promtool(['check', 'rules', RULES_FILE]);
    expect(result.output).toContain('SUCCESS');
    expect(result.status).toBe(0);
  });

  it('has the alerts the operations pack asks for', () => {
    const alerts = rules.groups.flatMap((group) => group.rules.map((rule) => rule.alert));
    expect(alerts).toEqual(
      expect.arrayContaining([
        'GatehouseHigh5xxRatio',
        'GatehouseUpstreamUnavailable',
        'GatehouseRefreshReuseSpike',
        'GatehouseReadinessFlapping',
        'GatehouseAuditPublishBacklog',
      ]),
    );
  });

  it('dashboard panels query the provisioned Prometheus data source and cover the asked-for areas', () => {
    const datasource = parse(
      fs.readFileSync(path.join(MONITORING, 'grafana', 'provisioning', 'datasources', 'prometheus.yml'), 'utf8'),
    ) as {
      datasources: { uid: string }[];
    };
    const uid = datasource.datasources[0]!.uid;
    for (const panel of dashboard.panels) {
      expect(panel.datasource.uid, panel.title).toBe(uid);
      expect(panel.targets.length, panel.title).toBeGreaterThan(0);
    }
    for (const name of [
      'gatehouse_http_requests_total',
      'gatehouse_http_request_duration_seconds',
      'gatehouse_auth_failures_total',
      'gatehouse_rate_limited_total',
      'gatehouse_upstream_requests_total',
      'gatehouse_refresh_reuse_detected_total',
      'gatehouse_ws_connections',
      'gatehouse_nodejs_eventloop_lag_p99_seconds',
    ]) {
      expect(
        queried.get(name)?.some((where) => where.startsWith('panel')),
        name,
      ).toBe(true);
    }
  });

  it('the monitoring stack passes docker stack config (offline)', () => {
    const docker = spawnSync('docker', ['--version'], { stdio: 'ignore' });
    if (docker.status !== 0) {
      if (process.env.REQUIRE_SERVICES === '1') throw new Error('the docker CLI is missing and REQUIRE_SERVICES=1');
      console.warn('skipping docker stack config: the docker CLI is missing');
      return;
    }
    const result = spawnSync('docker', ['stack', 'config', '-c', STACK_FILE], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
      timeout: 30_000,
    });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const stack = parse(result.stdout) as {
      services: Record<string, { ports?: { target: number }[] }>;
      configs: Record<string, { file: string }>;
    };
    expect(Object.keys(stack.services).sort()).toEqual(['grafana', 'prometheus']);
    // Prometheus is not published: only Grafana has a port
    expect(stack.services.prometheus!.ports).toBeUndefined();
    for (const config of Object.values(stack.configs)) expect(fs.existsSync(config.file), config.file).toBe(true);
  });
});

const available = servicesAvailable({ postgres: true, nats: true });

describe.skipIf(!available)('every metric the dashboard and the alerts query is exported', () => {
  let db: TestDatabase;
  let gatehouse: GatehouseProcess;
  let exported: Set<string>;
  let text: string;

  beforeAll(async () => {
    db = await createTestDatabase();
    gatehouse = await spawnGatehouse({ DATABASE_URL: db.url, NATS_URL }, 'monitoring');
    await http(gatehouse.url, 'GET', '/ready');
    await http(gatehouse.url, 'GET', '/v1/auth/me', { headers: { authorization: 'Bearer nope' } });
    await http(gatehouse.url, 'POST', '/v1/auth/token', {
      json: { grant_type: 'password', username: 'nobody@example.com', password: 'wrong-password-1' },
    });
    const scrape = await http(gatehouse.url, 'GET', '/metrics');
    expect(scrape.status).toBe(200);
    text = scrape.text;
    exported = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((match) => match[1]!));
  });
  afterAll(async () => {
    await gatehouse?.stop();
    await db?.drop();
  });

  it('finds each queried metric among the TYPE lines of /metrics', () => {
    expect(queried.size).toBeGreaterThan(10);
    const missing = [...queried.entries()].filter(([name]) => !exported.has(name)).map(([name, where]) => `${name} (${where.join(', ')})`);
    expect(missing).toEqual([]);
  });

  it('has samples for the series the traffic above produced', () => {
    expect(text).toMatch(/^gatehouse_http_requests_total\{[^}]*route="\/ready"[^}]*status="200"/m);
    expect(text).toMatch(/^gatehouse_auth_failures_total\{reason="[a-z_]+"\} [1-9]/m);
    expect(text).toMatch(/^gatehouse_audit_publish_backlog \d+$/m);
    expect(text).toMatch(/^gatehouse_ws_connections \d+$/m);
  });
});
