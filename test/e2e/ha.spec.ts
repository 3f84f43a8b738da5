import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_EMAIL, ADMIN_PASSWORD, createTenant, inTenant, signinAdmin, userWithRole } from '../support/admin-fixtures';
import { startBalancer, type Balancer } from '../support/balancer';
import { request } from '../support/closing-request';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { STRONG_PASSWORD, uniqueEmail } from '../support/http';
import { spawnGatehouse, waitFor, type GatehouseProcess } from '../support/process';
import { NATS_URL, servicesAvailable } from '../support/services';

/*
 * Two Gatehouse processes on one PostgreSQL and one NATS, behind a round-robin TCP balancer
 * that follows /ready (as Swarm's load balancing follows the healthcheck), under steady load
 * from a few clients.
 *
 * The load client opens one connection per request (`Connection: close`), as a client behind
 * an L7 edge effectively does: every request is placed by the balancer, so a replica that
 * left the rotation gets no new work. It retries nothing, with one exception the contract
 * makes safe: a refresh whose response was lost (network error) is sent again with the same
 * token, which REFRESH_REUSE_GRACE answers with the same successor. Any network error or
 * unexpected status counts as a failed request.
 */

const available = servicesAvailable({ postgres: true, nats: true });
const ROOT = path.resolve(__dirname, '..', '..');
const LOAD_WORKERS = 3;
const LOAD_INTERVAL_MS = 20;

interface Session {
  userId: string;
  email: string;
  accessToken: string;
  refreshToken: string;
  sessionId: string;
}

interface Failure {
  kind: string;
  startedAt: number;
  error: string;
}

interface LoadReport {
  startedAt: number;
  requests: number;
  ok: number;
  failures: Failure[];
  rotations: number;
  refreshRetries: number;
  signins: number;
  durationMs: number;
  /** successful requests that started at or after `since` */
  okSince(since: number): number;
}

interface Load {
  report(): LoadReport;
  stop(): Promise<LoadReport>;
}

/** Session ids the load clients saw created by a successful sign-in, over the whole file. */
const signedInSessions = new Set<string>();

/**
 * `LOAD_WORKERS` clients, each with its own session, one request every LOAD_INTERVAL_MS at
 * most: mostly GET /v1/auth/me, every 5th a refresh (rotation), one in 10 a new sign-in.
 */
function startLoad(base: string, sessions: Session[]): Load {
  const started = Date.now();
  const outcomes: { startedAt: number; ok: boolean }[] = [];
  const failures: Failure[] = [];
  let rotations = 0;
  let refreshRetries = 0;
  let signins = 0;
  let running = true;

  const worker = async (session: Session) => {
    let refreshPending = false;
    for (let iteration = 0; running; iteration += 1) {
      const startedAt = Date.now();
      const kind = refreshPending || iteration % 5 === 4 ? 'refresh' : iteration % 10 === 7 ? 'signin' : 'me';
      let ok = false;
      try {
        if (kind === 'refresh') {
          if (refreshPending) refreshRetries += 1;
          const reply = await request(base, 'POST', '/v1/auth/refresh', { json: { refresh_token: session.refreshToken } });
          if (reply.status === 200) {
            session.refreshToken = reply.json.refresh_token;
            session.accessToken = reply.json.access_token;
            rotations += 1;
            ok = true;
          } else {
            failures.push({ kind, startedAt, error: `status ${reply.status} ${reply.json?.code}` });
          }
          // an answer, either way: the rotation's outcome is known
          refreshPending = false;
        } else if (kind === 'signin') {
          const reply = await request(base, 'POST', '/v1/auth/signin', { json: { email: session.email, password: STRONG_PASSWORD } });
          if (reply.status === 200) {
            signedInSessions.add(reply.json.session_id);
            signins += 1;
            ok = true;
          } else {
            failures.push({ kind, startedAt, error: `status ${reply.status} ${reply.json?.code}` });
          }
        } else {
          const reply = await request(base, 'GET', '/v1/auth/me', { token: session.accessToken });
          if (reply.status === 200 && reply.json.user.id === session.userId) ok = true;
          else failures.push({ kind, startedAt, error: `status ${reply.status} ${reply.json?.code}` });
        }
      } catch (error) {
        failures.push({ kind, startedAt, error: (error as Error).message });
        // the rotation may or may not have happened: send the same token again (grace window)
        if (kind === 'refresh') refreshPending = true;
      }
      outcomes.push({ startedAt, ok });
      const wait = LOAD_INTERVAL_MS - (Date.now() - startedAt);
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    }
    // leave the session consistent: a lost refresh is settled before the load reports
    for (let attempt = 0; refreshPending && attempt < 5; attempt += 1) {
      try {
        refreshRetries += 1;
        const reply = await request(base, 'POST', '/v1/auth/refresh', { json: { refresh_token: session.refreshToken } });
        if (reply.status !== 200) throw new Error(`settling refresh: status ${reply.status} ${reply.json?.code}`);
        session.refreshToken = reply.json.refresh_token;
        session.accessToken = reply.json.access_token;
        rotations += 1;
        refreshPending = false;
      } catch (error) {
        failures.push({ kind: 'refresh', startedAt: Date.now(), error: (error as Error).message });
      }
    }
  };

  const workers = sessions.map((session) => worker(session));
  const report = (): LoadReport => ({
    startedAt: started,
    requests: outcomes.length,
    ok: outcomes.filter((outcome) => outcome.ok).length,
    failures: [...failures],
    rotations,
    refreshRetries,
    signins,
    durationMs: Date.now() - started,
    okSince: (since) => outcomes.filter((outcome) => outcome.ok && outcome.startedAt >= since).length,
  });
  return {
    report,
    async stop() {
      running = false;
      await Promise.all(workers);
      return report();
    },
  };
}

function describeLoad(label: string, load: LoadReport, extra: Record<string, unknown> = {}): void {
  const rate = load.requests / (load.durationMs / 1000);
  console.log(
    `[ha] ${label}: ${load.requests} requests in ${(load.durationMs / 1000).toFixed(1)} s (${rate.toFixed(0)}/s), ` +
      `${load.failures.length} failed, ${load.rotations} rotations, ${load.signins} sign-ins, ${load.refreshRetries} refresh retries` +
      (Object.keys(extra).length > 0 ? ` ${JSON.stringify(extra)}` : ''),
  );
  for (const failure of load.failures) {
    console.log(`[ha]   failed ${failure.kind} sent at +${failure.startedAt - load.startedAt} ms: ${failure.error}`);
  }
}

const sha256 = (value: string) => createHash('sha256').update(value, 'utf8').digest('hex');

function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

describe.skipIf(!available)('two replicas behind a balancer behave as one service', () => {
  let db: TestDatabase;
  let balancer: Balancer;
  const replicas = new Map<string, GatehouseProcess>();
  const bucket = `gh_ha_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  let env: Record<string, string>;
  let root: string;
  const loadSessions: Session[] = [];
  const signupSessions = new Set<string>();

  const spawnReplica = async (name: string) => {
    const replica = await spawnGatehouse(env, `ha-${name}`);
    replicas.set(name, replica);
    return replica;
  };

  const signup = async (base: string): Promise<Session> => {
    const email = uniqueEmail('ha');
    const reply = await request(base, 'POST', '/v1/auth/signup', { json: { email, password: STRONG_PASSWORD } });
    expect(reply.status, JSON.stringify(reply.json)).toBe(201);
    signupSessions.add(reply.json.session_id);
    return {
      userId: reply.json.user.id,
      email,
      accessToken: reply.json.access_token,
      refreshToken: reply.json.refresh_token,
      sessionId: reply.json.session_id,
    };
  };

  beforeAll(async () => {
    db = await createTestDatabase();
    env = {
      DATABASE_URL: db.url,
      NATS_URL,
      MASTER_KEY: Buffer.alloc(32, 11).toString('base64'),
      PUBLIC_URL: 'http://gatehouse.test',
      GRPC_PORT: '0',
      ROUTING_FILE: path.join(ROOT, 'swarm', 'config', 'routing.json'),
      ROUTING_KV_BUCKET: bucket,
      BOOTSTRAP_ADMIN_EMAIL: ADMIN_EMAIL,
      BOOTSTRAP_ADMIN_PASSWORD: ADMIN_PASSWORD,
      AUTH_IP_LIMIT: '1000000',
      // the balancer must see /ready 503 (every 100 ms) well before the listener closes
      SHUTDOWN_DRAIN_MS: '1000',
      LOG_LEVEL: 'warn',
    };
    const [a, b] = await Promise.all([spawnReplica('a'), spawnReplica('b')]);
    balancer = await startBalancer([
      { name: 'a', host: '127.0.0.1', port: a.port },
      { name: 'b', host: '127.0.0.1', port: b.port },
    ]);
    await waitFor(() => balancer.isReady('a') && balancer.isReady('b'), 30_000);
    root = await signinAdmin(balancer.url);
    for (let index = 0; index < LOAD_WORKERS; index += 1) loadSessions.push(await signup(balancer.url));
  });

  afterAll(async () => {
    await balancer?.close();
    await Promise.all([...replicas.values()].map((replica) => replica.stop()));
    await db?.drop();
    const nc = await connect({ servers: NATS_URL }).catch(() => undefined);
    if (nc !== undefined) {
      const kv = await new Kvm(nc).open(bucket).catch(() => undefined);
      await kv?.destroy().catch(() => undefined);
      await nc.close();
    }
  });

  it('both replicas report the same build in /health', async () => {
    const { version } = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const replica of replicas.values()) {
      const health = await request(replica.url, 'GET', '/health');
      expect(health.status).toBe(200);
      expect(health.json).toEqual({ status: 'ok', version, commit: gitCommit(), node: process.version });
    }
  });

  it('signs in through the balancer, then rotates 50 times alternating replicas, every rotation succeeding', async () => {
    const load = startLoad(balancer.url, loadSessions);
    const user = await signup(balancer.url);
    const signin = await request(balancer.url, 'POST', '/v1/auth/signin', { json: { email: user.email, password: STRONG_PASSWORD } });
    expect(signin.status).toBe(200);
    let token: string = signin.json.refresh_token;
    const seen = new Set([token]);
    const direct = [replicas.get('a')!.url, replicas.get('b')!.url];
    const started = Date.now();
    const statuses: number[] = [];
    for (let rotation = 0; rotation < 50; rotation += 1) {
      const reply = await request(direct[rotation % 2]!, 'POST', '/v1/auth/refresh', { json: { refresh_token: token } });
      statuses.push(reply.status);
      if (reply.status !== 200) break;
      expect(reply.json.session_id).toBe(signin.json.session_id);
      token = reply.json.refresh_token;
      seen.add(token);
    }
    const elapsed = Date.now() - started;
    const report = await load.stop();
    describeLoad('50 alternating rotations', report, { rotations_ms_total: elapsed, rotation_ms_avg: +(elapsed / 50).toFixed(1) });

    expect(statuses).toEqual(Array(50).fill(200));
    expect(seen.size).toBe(51);
    const rows = await db.query<{ token_hash: string; spent: boolean }>(
      `SELECT token_hash, spent_at IS NOT NULL AS spent FROM refresh_tokens WHERE session_id = $1`,
      [signin.json.session_id],
    );
    expect(rows.rows).toHaveLength(51);
    expect(rows.rows.filter((row) => !row.spent).map((row) => row.token_hash)).toEqual([sha256(token)]);
    expect(report.failures).toEqual([]);
    expect(report.requests).toBeGreaterThan(0);
  });

  it('puts an admin change made through one replica in force through the other within 1 s', async () => {
    const load = startLoad(balancer.url, loadSessions);
    const [a, b] = [replicas.get('a')!.url, replicas.get('b')!.url];
    await createTenant(a, root, 'ha-acme');
    const user = await userWithRole(a, root, 'ha-acme', 'tenant_admin', 'ha-admin');
    expect((await request(b, 'GET', '/admin/users', { token: user.accessToken, headers: inTenant('ha-acme') })).status).toBe(200);

    // A → B: an assignment removed
    expect((await request(a, 'DELETE', `/admin/assignments/${user.assignmentId}`, { token: root })).status).toBe(204);
    const assignmentMs = await waitFor(
      async () => (await request(b, 'GET', '/admin/users', { token: user.accessToken, headers: inTenant('ha-acme') })).status === 403,
      1000,
      10,
    );
    // B → A: the account disabled
    expect((await request(a, 'GET', '/v1/auth/me', { token: user.accessToken })).status).toBe(200);
    expect((await request(b, 'POST', `/admin/users/${user.userId}/disable`, { token: root })).status).toBe(200);
    const disableMs = await waitFor(
      async () => (await request(a, 'GET', '/v1/auth/me', { token: user.accessToken })).status === 401,
      1000,
      10,
    );

    const report = await load.stop();
    describeLoad('admin changes across replicas', report, {
      assignment_removed_seen_on_b_ms: assignmentMs,
      disable_seen_on_a_ms: disableMs,
    });
    expect(assignmentMs).toBeLessThanOrEqual(1000);
    expect(disableMs).toBeLessThanOrEqual(1000);
    expect(report.failures).toEqual([]);
  });

  it('survives a rolling restart (SIGTERM, start again; A then B) with zero failed requests', async () => {
    const load = startLoad(balancer.url, loadSessions);
    await waitFor(() => load.report().ok >= 20, 10_000);
    const timings: Record<string, number> = {};
    for (const name of ['a', 'b']) {
      const old = replicas.get(name)!;
      const stopping = Date.now();
      old.child.kill('SIGTERM');
      timings[`${name}_out_of_rotation_ms`] = await waitFor(() => !balancer.isReady(name), 2000, 5);
      // taken out by /ready's 503, inside the drain, not by a refused connection after it
      expect(timings[`${name}_out_of_rotation_ms`]).toBeLessThan(Number(env.SHUTDOWN_DRAIN_MS));
      const code = await old.exited;
      const exitedAt = Date.now();
      expect(code).toBe(0);
      // the balancer had the replica out before its listener closed
      expect(balancer.downSince(name)).toBeLessThan(exitedAt);
      timings[`${name}_exit_ms`] = exitedAt - stopping;
      balancer.remove(name);
      const okBefore = load.report().ok;

      const fresh = await spawnReplica(name);
      balancer.add({ name, host: '127.0.0.1', port: fresh.port });
      await waitFor(() => balancer.isReady(name), 30_000);
      timings[`${name}_back_ms`] = Date.now() - stopping;
      // the other replica served alone meanwhile
      expect(load.report().ok).toBeGreaterThan(okBefore);
      const connectionsBefore = balancer.connections()[name] ?? 0;
      await waitFor(() => (balancer.connections()[name] ?? 0) > connectionsBefore + 10, 10_000);
    }
    const report = await load.stop();
    describeLoad('rolling restart', report, { ...timings, connections: balancer.connections(), balancer_refused: balancer.refused });
    expect(report.failures).toEqual([]);
    expect(balancer.refused).toBe(0);
    expect(report.requests).toBeGreaterThan(50);
    // two restarts: usually ~20 s here; the ceiling leaves room for a machine busy with other suites
  }, 90_000);

  it('keeps serving when one replica is killed with SIGKILL mid-load, losing and duplicating nothing', async () => {
    const load = startLoad(balancer.url, loadSessions);
    await waitFor(() => load.report().ok >= 30, 10_000);
    const victim = replicas.get('a')!;
    const killedAt = Date.now();
    victim.child.kill('SIGKILL');
    await victim.exited;
    const deadAt = Date.now();
    // the survivor carries the whole load
    await waitFor(() => load.report().okSince(deadAt) >= 60, 20_000);
    const report = await load.stop();
    balancer.remove('a');
    replicas.delete('a');
    const failedAfterDeath = report.failures.filter((failure) => failure.startedAt >= deadAt);
    describeLoad('kill -9 of replica a', report, {
      failed_in_flight_at_kill: report.failures.length - failedAfterDeath.length,
      ok_after_death: report.okSince(deadAt),
      killed_at_ms: killedAt - report.startedAt,
      kill_to_exit_ms: deadAt - killedAt,
      balancer_refused: balancer.refused,
    });
    // only requests already in flight on the killed replica may fail
    expect(failedAfterDeath).toEqual([]);

    // every client's session is still usable: its refresh token is the family's one live token
    const survivor = replicas.get('b')!.url;
    for (const session of loadSessions) {
      const rotated = await request(survivor, 'POST', '/v1/auth/refresh', { json: { refresh_token: session.refreshToken } });
      expect(rotated.status, JSON.stringify(rotated.json)).toBe(200);
      session.refreshToken = rotated.json.refresh_token;
      const live = await db.query<{ token_hash: string }>(
        `SELECT token_hash FROM refresh_tokens WHERE session_id = $1 AND spent_at IS NULL`,
        [session.sessionId],
      );
      expect(live.rows.map((row) => row.token_hash)).toEqual([sha256(session.refreshToken)]);
    }

    // audit: seq gap-free 1..N, no duplicates, and the hash chain verifies
    const audit = await db.query<{ n: string; distinct_seq: string; min_seq: string; max_seq: string }>(
      `SELECT count(*) AS n, count(DISTINCT seq) AS distinct_seq, min(seq) AS min_seq, max(seq) AS max_seq FROM audit_records`,
    );
    const { n, distinct_seq: distinctSeq, min_seq: minSeq, max_seq: maxSeq } = audit.rows[0]!;
    expect(Number(minSeq)).toBe(1);
    expect(Number(distinctSeq)).toBe(Number(n));
    expect(Number(maxSeq)).toBe(Number(n));
    const verify = await request(survivor, 'GET', '/admin/audit/verify', { token: root });
    expect(verify.status).toBe(200);
    expect(verify.json).toMatchObject({ ok: true, checked: Number(n), first_bad_seq: null });

    // refresh families: every live session has exactly one unspent token, and its tokens form
    // one chain (each spent token has a successor in the family, nobody has two predecessors)
    const userIds = [...new Set(loadSessions.map((session) => session.userId))];
    const families = await db.query<{
      session_id: string;
      revoked: boolean;
      tokens: string;
      unspent: string;
      successors: string;
      distinct_successors: string;
      foreign: string;
    }>(
      `SELECT s.id AS session_id, s.revoked_at IS NOT NULL AS revoked,
              count(t.id) AS tokens,
              count(t.id) FILTER (WHERE t.spent_at IS NULL) AS unspent,
              count(t.successor_id) AS successors,
              count(DISTINCT t.successor_id) AS distinct_successors,
              count(t.successor_id) FILTER (WHERE NOT EXISTS (SELECT 1 FROM refresh_tokens x WHERE x.id = t.successor_id AND x.session_id = s.id)) AS foreign
         FROM sessions s JOIN refresh_tokens t ON t.session_id = s.id
        WHERE s.user_id = ANY($1)
        GROUP BY s.id, s.revoked_at`,
      [userIds],
    );
    expect(families.rows.length).toBeGreaterThan(LOAD_WORKERS);
    for (const family of families.rows) {
      expect(family.revoked, family.session_id).toBe(false);
      expect(Number(family.unspent), family.session_id).toBe(1);
      expect(Number(family.successors), family.session_id).toBe(Number(family.tokens) - 1);
      expect(Number(family.distinct_successors), family.session_id).toBe(Number(family.successors));
      expect(Number(family.foreign), family.session_id).toBe(0);
    }
    const sessionsWithoutTokens = await db.query(
      `SELECT s.id FROM sessions s WHERE s.user_id = ANY($1) AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.session_id = s.id)`,
      [userIds],
    );
    expect(sessionsWithoutTokens.rows).toEqual([]);

    // sign-ins: each session a sign-in created has exactly one auth.signin record and each
    // record has its session; every sign-in a client saw succeed is among them
    const signinAudit = await db.query<{ session_id: string; records: string }>(
      `SELECT s.id AS session_id, count(a.seq) AS records
         FROM sessions s LEFT JOIN audit_records a ON a.action = 'auth.signin' AND a.target_id = s.id
        WHERE s.user_id = ANY($1)
        GROUP BY s.id`,
      [userIds],
    );
    const recordsBySession = new Map(signinAudit.rows.map((row) => [row.session_id, Number(row.records)]));
    for (const [sessionId, records] of recordsBySession) expect(records, sessionId).toBe(signupSessions.has(sessionId) ? 0 : 1);
    expect(signedInSessions.size).toBeGreaterThan(0);
    for (const sessionId of signedInSessions) expect(recordsBySession.get(sessionId), sessionId).toBe(1);
    const orphans = await db.query(
      `SELECT a.seq FROM audit_records a WHERE a.action = 'auth.signin' AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = a.target_id)`,
    );
    expect(orphans.rows).toEqual([]);
    const signupRecords = await db.query<{ n: string }>(
      `SELECT count(*) AS n FROM audit_records WHERE action = 'user.signup' AND target_id = ANY($1)`,
      [userIds],
    );
    expect(Number(signupRecords.rows[0]!.n)).toBe(userIds.length);
    console.log(
      `[ha] integrity after kill -9: ${n} audit records gap-free and chained; ${families.rows.length} refresh families of the load users, ` +
        `each with one live token; ${recordsBySession.size - signupSessions.size} sign-in sessions with one audit record each`,
    );
  });
});
