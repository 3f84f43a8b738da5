import path from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { expect } from 'vitest';
import { AUDIT_STREAM } from '../../../src/audit/audit-publisher.service';
import { ADMIN_EMAIL, ADMIN_PASSWORD } from '../../support/admin-fixtures';
import { startBalancer, type Balancer } from '../../support/balancer';
import { STRONG_PASSWORD, uniqueEmail } from '../../support/http';
import { spawnGatehouse, waitFor, type GatehouseProcess } from '../../support/process';
import { request, type Reply } from '../../support/closing-request';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy';
import { startPrivateNats, type PrivateNats } from './private-nats';
import { startPrivatePostgres, type PrivatePostgres } from './private-postgres';

const ROOT = path.resolve(__dirname, '..', '..', '..');
export const DB_TIMEOUT_MS = 1500;

export interface Session {
  userId: string;
  email: string;
  accessToken: string;
  refreshToken: string;
  sessionId: string;
}

/**
 * Private PostgreSQL and NATS (each behind a TCP proxy the test can cut or slow), two
 * Gatehouse replicas and a /ready-aware balancer in front of them.
 */
export interface FaultCluster {
  pg: PrivatePostgres;
  nats: PrivateNats;
  pgProxy: TcpProxy;
  natsProxy: TcpProxy;
  replicas: GatehouseProcess[];
  balancer: Balancer;
  env: Record<string, string>;
  adminToken: string;
  spawnReplica(name: string, extra?: Record<string, string>, options?: { untilStarted?: boolean }): Promise<GatehouseProcess>;
  signup(base?: string): Promise<Session>;
  destroy(): Promise<void>;
}

export async function startFaultCluster(options: { routingFile?: string } = {}): Promise<FaultCluster> {
  const [pg, nats] = await Promise.all([startPrivatePostgres(), startPrivateNats()]);
  const pgProxy = await startTcpProxy('127.0.0.1', pg.port);
  const natsProxy = await startTcpProxy('127.0.0.1', nats.port);
  const env: Record<string, string> = {
    DATABASE_URL: `postgresql://postgres@127.0.0.1:${pgProxy.port}/gatehouse`,
    NATS_URL: `nats://127.0.0.1:${natsProxy.port}`,
    DB_TIMEOUT_MS: String(DB_TIMEOUT_MS),
    MASTER_KEY: Buffer.alloc(32, 12).toString('base64'),
    PUBLIC_URL: 'http://gatehouse.test',
    GRPC_PORT: '0',
    ROUTING_FILE: options.routingFile ?? path.join(ROOT, 'swarm', 'config', 'routing.json'),
    BOOTSTRAP_ADMIN_EMAIL: ADMIN_EMAIL,
    BOOTSTRAP_ADMIN_PASSWORD: ADMIN_PASSWORD,
    AUTH_IP_LIMIT: '1000000',
    AUTH_ACCOUNT_FAILURE_LIMIT: '1000000',
    SHUTDOWN_DRAIN_MS: '0',
    LOG_LEVEL: 'info',
  };
  const replicas: GatehouseProcess[] = [];
  const spawnReplica = async (name: string, extra: Record<string, string> = {}, spawnOptions: { untilStarted?: boolean } = {}) => {
    // a saturated shared machine can take well over a minute to start a process
    const replica = await spawnGatehouse({ ...env, ...extra }, `fault-${name}`, { startTimeoutMs: 180_000, ...spawnOptions });
    replicas.push(replica);
    return replica;
  };
  let a: GatehouseProcess;
  let b: GatehouseProcess;
  try {
    // one first, so the two do not race to apply migrations on a cold cluster for nothing
    a = await spawnReplica('a');
    b = await spawnReplica('b');
  } catch (error) {
    await Promise.all(replicas.map((replica) => replica.stop()));
    await pgProxy.close();
    await natsProxy.close();
    await Promise.all([pg.destroy(), nats.destroy()]);
    throw error;
  }
  const balancer = await startBalancer([
    { name: 'a', host: '127.0.0.1', port: a.port },
    { name: 'b', host: '127.0.0.1', port: b.port },
  ]);
  await waitFor(() => balancer.isReady('a') && balancer.isReady('b'), 30_000);
  const signin = await request(balancer.url, 'POST', '/v1/auth/signin', { json: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } });
  expect(signin.status, JSON.stringify(signin.json)).toBe(200);

  const signup = async (base = balancer.url): Promise<Session> => {
    const email = uniqueEmail('fault');
    const reply = await request(base, 'POST', '/v1/auth/signup', { json: { email, password: STRONG_PASSWORD } });
    expect(reply.status, JSON.stringify(reply.json)).toBe(201);
    return {
      userId: reply.json.user.id,
      email,
      accessToken: reply.json.access_token,
      refreshToken: reply.json.refresh_token,
      sessionId: reply.json.session_id,
    };
  };

  return {
    pg,
    nats,
    pgProxy,
    natsProxy,
    replicas,
    balancer,
    env,
    adminToken: signin.json.access_token as string,
    spawnReplica,
    signup,
    async destroy() {
      await balancer.close();
      await Promise.all(replicas.map((replica) => replica.stop()));
      await pgProxy.close();
      await natsProxy.close();
      await Promise.all([pg.destroy(), nats.destroy()]);
    },
  };
}

export interface Outcome {
  kind: 'me' | 'refresh' | 'signin' | 'mutation' | 'proxy';
  startedAt: number;
  durationMs: number;
  /** HTTP status, or 0 for a network error */
  status: number;
  code?: string;
  retryAfter?: string;
  error?: string;
  /** for mutations: the tenant id it tried to create */
  tenantId?: string;
}

export interface Load {
  outcomes: Outcome[];
  stop(): Promise<Outcome[]>;
}

/**
 * A few clients, each with its own session, one request every `intervalMs` at most, to
 * `target()`: mostly GET /v1/auth/me, every 5th a refresh, every 10th a sign-in, every 7th
 * an admin mutation (a new tenant) and, with `proxyTenant`, every 6th a proxied query. A refresh whose answer was lost is sent again with
 * the same token (the grace window makes that safe), as a careful client does.
 */
export function startLoad(
  target: () => string,
  sessions: Session[],
  adminToken: string,
  options: { intervalMs?: number; timeoutMs?: number; /** every 6th request a proxied query in this tenant */ proxyTenant?: string } = {},
): Load {
  const outcomes: Outcome[] = [];
  let running = true;
  let tenantCounter = 0;
  const intervalMs = options.intervalMs ?? 25;

  const worker = async (session: Session, index: number) => {
    let refreshPending = false;
    for (let iteration = index; running || refreshPending; iteration += 1) {
      const startedAt = Date.now();
      const kind: Outcome['kind'] =
        refreshPending || iteration % 5 === 4
          ? 'refresh'
          : iteration % 10 === 7
            ? 'signin'
            : iteration % 7 === 3
              ? 'mutation'
              : options.proxyTenant !== undefined && iteration % 6 === 1
                ? 'proxy'
                : 'me';
      const outcome: Outcome = { kind, startedAt, durationMs: 0, status: 0 };
      try {
        let reply: Reply;
        if (kind === 'refresh') {
          reply = await request(target(), 'POST', '/v1/auth/refresh', {
            json: { refresh_token: session.refreshToken },
            timeoutMs: options.timeoutMs,
          });
          if (reply.status === 200) {
            session.refreshToken = reply.json.refresh_token;
            session.accessToken = reply.json.access_token;
          }
          refreshPending = false;
        } else if (kind === 'signin') {
          reply = await request(target(), 'POST', '/v1/auth/signin', {
            json: { email: session.email, password: STRONG_PASSWORD },
            timeoutMs: options.timeoutMs,
          });
        } else if (kind === 'mutation') {
          tenantCounter += 1;
          outcome.tenantId = `fault-${Date.now().toString(36)}-${tenantCounter}`;
          reply = await request(target(), 'POST', '/admin/tenants', {
            token: adminToken,
            json: { id: outcome.tenantId, name: `Fault ${tenantCounter}` },
            timeoutMs: options.timeoutMs,
          });
        } else if (kind === 'proxy') {
          reply = await request(target(), 'POST', '/v1/query/orders', {
            token: adminToken,
            json: { iteration },
            headers: { 'x-tenant-id': options.proxyTenant! },
            timeoutMs: options.timeoutMs,
          });
        } else {
          reply = await request(target(), 'GET', '/v1/auth/me', { token: session.accessToken, timeoutMs: options.timeoutMs });
        }
        outcome.status = reply.status;
        outcome.code = reply.json?.code;
        const retryAfter = reply.headers['retry-after'];
        if (typeof retryAfter === 'string') outcome.retryAfter = retryAfter;
      } catch (error) {
        outcome.error = (error as Error).message;
        if (kind === 'refresh') refreshPending = true;
      }
      outcome.durationMs = Date.now() - startedAt;
      outcomes.push(outcome);
      if (refreshPending && !running) await new Promise((resolve) => setTimeout(resolve, 200));
      const wait = intervalMs - (Date.now() - startedAt);
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    }
  };
  const workers = sessions.map((session, index) => worker(session, index));
  return {
    outcomes,
    async stop() {
      running = false;
      await Promise.all(workers);
      return outcomes;
    },
  };
}

export function summarize(label: string, outcomes: Outcome[]): Record<string, number> {
  const byStatus: Record<string, number> = {};
  for (const outcome of outcomes) {
    const key = outcome.status === 0 ? `net:${outcome.error}` : `${outcome.status}${outcome.code !== undefined ? ` ${outcome.code}` : ''}`;
    byStatus[key] = (byStatus[key] ?? 0) + 1;
  }
  const slowest = Math.max(0, ...outcomes.map((outcome) => outcome.durationMs));
  console.log(`[fault] ${label}: ${outcomes.length} requests, slowest ${slowest} ms, ${JSON.stringify(byStatus)}`);
  return byStatus;
}

/**
 * The checks that must hold after every fault: each 2xx mutation has its row and exactly one
 * audit record; a mutation answered with an error left neither; the chain verifies; the
 * JetStream stream holds every audit record exactly once; every live refresh family has
 * exactly one unspent token.
 */
export async function checkIntegrity(cluster: FaultCluster, outcomes: Outcome[]): Promise<void> {
  const { pg } = cluster;
  const mutations = outcomes.filter((outcome) => outcome.kind === 'mutation' && outcome.status !== 0);
  const tenants = await pg.query<{ id: string }>(`SELECT id FROM tenants WHERE id LIKE 'fault-%'`);
  const existing = new Set(tenants.rows.map((row) => row.id));
  const audited = await pg.query<{ target_id: string; records: string }>(
    `SELECT target_id, count(*) AS records FROM audit_records WHERE action = 'platform.tenant.create' GROUP BY target_id`,
  );
  const records = new Map(audited.rows.map((row) => [row.target_id, Number(row.records)]));
  for (const mutation of mutations) {
    if (mutation.status >= 200 && mutation.status < 300) {
      expect(existing.has(mutation.tenantId!), `tenant ${mutation.tenantId} answered ${mutation.status}`).toBe(true);
      expect(records.get(mutation.tenantId!), `audit of ${mutation.tenantId}`).toBe(1);
    } else {
      expect(existing.has(mutation.tenantId!), `tenant ${mutation.tenantId} answered ${mutation.status} but exists`).toBe(false);
      expect(records.get(mutation.tenantId!), `audit of failed ${mutation.tenantId}`).toBeUndefined();
    }
  }

  const total = Number((await pg.query<{ n: string }>(`SELECT count(*) AS n FROM audit_records`)).rows[0]!.n);
  const verify = await request(cluster.balancer.url, 'GET', '/admin/audit/verify', { token: cluster.adminToken });
  expect(verify.status, JSON.stringify(verify.json)).toBe(200);
  expect(verify.json).toMatchObject({ ok: true, first_bad_seq: null });
  expect(verify.json.checked).toBeGreaterThanOrEqual(total);

  // the stream: every record, once (the msgID de-duplicates republishing)
  const nc = await connect({ servers: cluster.nats.url });
  try {
    const jsm = await jetstreamManager(nc);
    const final = Number((await pg.query<{ n: string }>(`SELECT count(*) AS n FROM audit_records`)).rows[0]!.n);
    await waitFor(async () => (await jsm.streams.info(AUDIT_STREAM).catch(() => undefined))?.state.messages === final, 10_000, 100);
  } finally {
    await nc.close();
  }

  const families = await pg.query<{ session_id: string; unspent: string }>(
    `SELECT s.id AS session_id, count(t.id) FILTER (WHERE t.spent_at IS NULL) AS unspent
       FROM sessions s JOIN refresh_tokens t ON t.session_id = s.id
      WHERE s.revoked_at IS NULL
      GROUP BY s.id`,
  );
  for (const family of families.rows) expect(Number(family.unspent), `session ${family.session_id}`).toBe(1);
}
