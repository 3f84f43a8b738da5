import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { http } from '../support/http';
import { spawnGatehouse, type GatehouseProcess } from '../support/process';
import { promtool, promtoolAvailable } from '../support/promtool';
import { NATS_URL, servicesAvailable } from '../support/services';

const available = servicesAvailable({ postgres: true, nats: true });

describe.skipIf(!available)('GET /metrics of a running Gatehouse', () => {
  let db: TestDatabase;
  let gatehouse: GatehouseProcess;
  let text: string;

  beforeAll(async () => {
    db = await createTestDatabase();
    gatehouse = await spawnGatehouse({ DATABASE_URL: db.url, NATS_URL }, 'metrics');
    // some traffic, so labelled series exist: a success, a 401 and an unmatched route
    await http(gatehouse.url, 'GET', '/health');
    await http(gatehouse.url, 'GET', '/v1/auth/me', { headers: { authorization: 'Bearer nope' } });
    await http(gatehouse.url, 'GET', '/no-such-route');
    const scrape = await http(gatehouse.url, 'GET', '/metrics');
    expect(scrape.status).toBe(200);
    text = scrape.text;
  });
  afterAll(async () => {
    await gatehouse?.stop();
    await db?.drop();
  });

  it('uses one gatehouse_ prefix for every metric, process and Node.js ones included', () => {
    const names = [...text.matchAll(/^# TYPE (\S+) /gm)].map((match) => match[1]!);
    expect(names.length).toBeGreaterThan(10);
    expect(names.filter((name) => !name.startsWith('gatehouse_'))).toEqual([]);
    expect(names.filter((name) => name.includes('process_process') || name.includes('gatehouse_gatehouse'))).toEqual([]);
    expect(names).toContain('gatehouse_process_cpu_seconds_total');
    expect(names).toContain('gatehouse_process_resident_memory_bytes');
  });

  it('exports gatehouse_build_info{version,commit,node} = 1', () => {
    const line = text.split('\n').find((candidate) => candidate.startsWith('gatehouse_build_info{'));
    expect(line).toBeDefined();
    expect(line).toMatch(/^gatehouse_build_info\{version="0\.\d+\.\d+",commit="(?:[0-9a-f]{40}|unknown)",node="v24\.[\d.]+"\} 1$/);
  });

  it('exports the event-loop delay', () => {
    expect(text).toMatch(/^# TYPE gatehouse_nodejs_eventloop_lag_p99_seconds gauge$/m);
    expect(text).toMatch(/^gatehouse_nodejs_eventloop_lag_p99_seconds \d/m);
  });

  it.runIf(promtoolAvailable())('passes promtool check metrics', () => {
    const result = promtool(['check', 'metrics'], text);
    expect(result.output).toBe('');
    expect(result.status).toBe(0);
  });
});
