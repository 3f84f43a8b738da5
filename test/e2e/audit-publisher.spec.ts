import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { randomUUID } from 'node:crypto';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chainParts } from '../../src/audit/audit-chain';
import { AUDIT_STREAM } from '../../src/audit/audit-publisher.service';
import { bootApp, type TestApp } from '../support/app';
import { signupUser } from '../support/auth-flows';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { http, uniqueEmail } from '../support/http';
import { waitFor } from '../support/process';
import { NATS_URL, servicesAvailable } from '../support/services';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy';

const available = servicesAvailable({ postgres: true, nats: true });

/** Where the publisher's cursor stands (the last seq acknowledged by JetStream). */
async function publishCursor(db: TestDatabase): Promise<bigint> {
  const rows = (await db.query<{ value: string }>(`SELECT value FROM system_settings WHERE key = 'audit_publish_cursor'`)).rows;
  return BigInt(rows[0]?.value ?? '0');
}

/** The last audit record's seq (0 without any). */
async function lastAuditSeq(db: TestDatabase): Promise<bigint> {
  return BigInt((await db.query<{ seq: string }>(`SELECT coalesce(max(seq), 0)::text AS seq FROM audit_records`)).rows[0]!.seq);
}

describe.skipIf(!available)('audit publishing to JetStream while NATS comes and goes', () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let app: TestApp;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let streamStart = 0;

  const cursor = () => publishCursor(db);
  const lastSeq = () => lastAuditSeq(db);
  const natsReady = async (state: 'ok' | 'failing') => (await http(app.url, 'GET', '/ready')).json?.checks?.nats === state;

  beforeAll(async () => {
    db = await createTestDatabase();
    const { hostname, port } = new URL(NATS_URL);
    proxy = await startTcpProxy(hostname, Number(port || 4222));
    nc = await connect({ servers: NATS_URL });
    jsm = await jetstreamManager(nc);
    // the stream is shared with other suites on this NATS: only read what is published from now on
    streamStart = await jsm.streams
      .info(AUDIT_STREAM)
      .then((info) => info.state.last_seq)
      .catch(() => 0);
    app = await bootApp({ DATABASE_URL: db.url, NATS_URL: `nats://127.0.0.1:${proxy.port}` });
  });
  afterAll(async () => {
    await app?.close();
    await proxy?.close();
    await nc?.close();
    await db?.drop();
  });

  it('publishes records written while NATS was unreachable once it is back, without slowing the requests', async () => {
    await signupUser(app.url, uniqueEmail('before-outage'));
    await waitFor(async () => (await cursor()) === (await lastSeq()), 5000, 50);
    const publishedBefore = await cursor();

    proxy.cut();
    await waitFor(() => natsReady('failing'), 5000, 50);
    const started = Date.now();
    const during = await Promise.all([1, 2, 3].map(() => signupUser(app.url, uniqueEmail('during-outage'))));
    expect(Date.now() - started).toBeLessThan(3000);
    const written = await db.query<{ id: string; action: string }>(`SELECT id, action FROM audit_records WHERE seq > $1 ORDER BY seq`, [
      publishedBefore.toString(),
    ]);
    expect(written.rows.length).toBeGreaterThanOrEqual(during.length);
    expect(await cursor()).toBe(publishedBefore);

    proxy.restore();
    await waitFor(async () => (await cursor()) === (await lastSeq()), 10_000, 50);
    // every record written during the outage is in the stream, once
    const ids = new Set(written.rows.map((row) => row.id));
    const seen: string[] = [];
    const last = (await jsm.streams.info(AUDIT_STREAM)).state.last_seq;
    for (let seq = streamStart + 1; seq <= last; seq += 1) {
      const id = (await jsm.streams.getMessage(AUDIT_STREAM, { seq }))?.header.get('Nats-Msg-Id');
      if (id !== undefined && ids.has(id)) seen.push(id);
    }
    const found = new Set(seen);
    expect(seen).toHaveLength(found.size);
    expect(found).toEqual(ids);
  });

  it('publishes a backlog larger than a batch across 99 → 100 in seq order, every record once', async () => {
    await waitFor(async () => (await cursor()) === (await lastSeq()), 10_000, 50);
    const publishedBefore = await cursor();
    // the case that lost records: a batch ordered by seq as text (…, 10, 100, …, 199, 2, 20, …)
    // took the wrong 200 and the cursor went past records it had not sent
    expect(publishedBefore).toBeLessThan(90n);
    proxy.cut();
    await waitFor(() => natsReady('failing'), 5000, 50);
    // 250 records in one transaction (the deferred trigger chains them at commit, as for any audited change)
    const ids = Array.from({ length: 250 }, () => randomUUID());
    const values: string[] = [];
    const params: unknown[] = [];
    for (const id of ids) {
      const parts = chainParts({
        id,
        actor: { principal_id: null, principal_type: null, ip: null, user_agent: null },
        action: 'test.backlog',
        target: { type: null, id: null },
        tenant_id: null,
        request_id: null,
        correlation_id: null,
        changes: null,
      });
      values.push(`($${params.length + 1}, 'test.backlog', $${params.length + 2}::text[])`);
      params.push(id, parts);
    }
    await db.query(`INSERT INTO audit_pending (id, action, parts) VALUES ${values.join(', ')}`, params);
    const written = await db.query<{ id: string; seq: string }>(`SELECT id, seq::text AS seq FROM audit_records WHERE seq > $1`, [
      publishedBefore.toString(),
    ]);
    expect(written.rows.length).toBe(ids.length);

    proxy.restore();
    await waitFor(async () => (await cursor()) === (await lastSeq()), 10_000, 50);
    const seqOf = new Map(written.rows.map((row) => [row.id, BigInt(row.seq)]));
    const streamed: bigint[] = [];
    const last = (await jsm.streams.info(AUDIT_STREAM)).state.last_seq;
    for (let seq = streamStart + 1; seq <= last; seq += 1) {
      const id = (await jsm.streams.getMessage(AUDIT_STREAM, { seq }))?.header.get('Nats-Msg-Id');
      const recordSeq = id === undefined ? undefined : seqOf.get(id);
      if (recordSeq !== undefined) streamed.push(recordSeq);
    }
    // each one once, in chain order
    expect(streamed).toEqual([...seqOf.values()].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)));
  });

  it('leaves publishing to whoever holds the publisher lock, and publishes once it is released', async () => {
    await waitFor(async () => (await cursor()) === (await lastSeq()), 10_000, 50);
    const publishedBefore = await cursor();
    const streamBefore = (await jsm.streams.info(AUDIT_STREAM)).state.last_seq;
    // another replica in the middle of its pass: it holds the lock ("audp") in its transaction
    const other = new pg.Client({ connectionString: db.url });
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query('SELECT pg_advisory_xact_lock(1635083376)');
      await signupUser(app.url, uniqueEmail('lock-held'));
      expect(await lastSeq()).toBeGreaterThan(publishedBefore);
      // several passes (nudge, then the 1 s poll) find the lock taken and leave the cursor alone
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(await cursor()).toBe(publishedBefore);
      // nor did any of them reach the stream (a publish without the lock would, deduplicated or
      // not); the stream is shared with whatever else runs on this NATS, so read it by record id
      const held = await db.query<{ id: string }>(`SELECT id FROM audit_records WHERE seq > $1`, [publishedBefore.toString()]);
      const heldIds = new Set(held.rows.map((row) => row.id));
      expect(heldIds.size).toBeGreaterThan(0);
      const streamNow = (await jsm.streams.info(AUDIT_STREAM)).state.last_seq;
      for (let seq = streamBefore + 1; seq <= streamNow; seq += 1) {
        const id = (await jsm.streams.getMessage(AUDIT_STREAM, { seq }))?.header.get('Nats-Msg-Id');
        expect(id !== undefined && heldIds.has(id), `stream message ${seq} is a record published while the lock was held`).toBe(false);
      }
      await other.query('COMMIT');
      await waitFor(async () => (await cursor()) === (await lastSeq()), 3000, 50);
    } finally {
      await other.end();
    }
  });

  it('resumes within a second of NATS returning even with a publish in flight at the cut, and logs its state truthfully', async () => {
    await waitFor(async () => (await cursor()) === (await lastSeq()), 10_000, 50);
    const logsBefore = app.logs().length;
    // a publish whose request is still in the relay when the connection is cut: its ack never comes
    proxy.setLatency(300);
    await signupUser(app.url, uniqueEmail('in-flight'));
    await new Promise((resolve) => setTimeout(resolve, 120));
    proxy.cut();
    proxy.setLatency(0);
    await waitFor(() => natsReady('failing'), 5000, 20);
    await signupUser(app.url, uniqueEmail('while-down'));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const whileDown = app.logs().slice(logsBefore);
    proxy.restore();
    const restoredAt = Date.now();
    await waitFor(async () => (await cursor()) === (await lastSeq()), 10_000, 20);
    const resumedMs = Date.now() - restoredAt;
    console.log(`[audit-publisher] caught up ${resumedMs} ms after NATS was reachable again`);
    // NATS_RECONNECT (250 ms + jitter) + one pass; a shared CI machine gets some slack
    expect(resumedMs).toBeLessThan(1500);

    const lines = app
      .logs()
      .slice(logsBefore)
      .split('\n')
      .filter((line) => line.includes('"task":"audit-publisher"'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(whileDown).not.toContain('publishing to JetStream again');
    expect(lines.map((line) => line.msg)).toContain(
      'NATS unreachable: audit records wait in the database and are published when it is back',
    );
    expect(lines.at(-1)?.msg).toBe('audit records publishing to JetStream again');
    // background work, not the sign-up that nudged it
    for (const line of lines) expect(line.request_id, JSON.stringify(line)).toBeUndefined();
  });
});

describe.skipIf(!available)('audit publishing while JetStream acknowledges slowly', () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let app: TestApp;

  beforeAll(async () => {
    db = await createTestDatabase();
    const { hostname, port } = new URL(NATS_URL);
    proxy = await startTcpProxy(hostname, Number(port || 4222));
    // the default DB_TIMEOUT_MS: the pool lets a transaction idle 3 s
    app = await bootApp({ DATABASE_URL: db.url, NATS_URL: `nats://127.0.0.1:${proxy.port}`, DB_TIMEOUT_MS: '3000' });
  });
  afterAll(async () => {
    await app?.close();
    await proxy?.close();
    await db?.drop();
  });

  it('advances the cursor when the acks take longer than the pool lets a transaction idle', async () => {
    const cursor = () => publishCursor(db);
    const lastSeq = () => lastAuditSeq(db);
    await signupUser(app.url, uniqueEmail('before-slow'));
    await waitFor(async () => (await cursor()) === (await lastSeq()), 10_000, 50);
    const before = await cursor();
    // 1.8 s each way: an ack comes ~3.6 s after its publish, within ACK_TIMEOUT_MS (5 s)
    proxy.setLatency(1800);
    try {
      await signupUser(app.url, uniqueEmail('slow-ack'));
      await waitFor(async () => (await cursor()) === (await lastSeq()), 15_000, 100);
    } finally {
      proxy.setLatency(0);
    }
    expect(await cursor()).toBeGreaterThan(before);
  }, 40_000);

  // before the fix the pg client's 'error' event went unhandled: the run reported it (a real process ends on it)
  it('survives the server ending its session while it waits for acks, and publishes the batch again', async () => {
    const cursor = () => publishCursor(db);
    const lastSeq = () => lastAuditSeq(db);
    await waitFor(async () => (await cursor()) === (await lastSeq()), 10_000, 50);
    const before = await cursor();
    proxy.setLatency(1500);
    let terminated = 0;
    try {
      await signupUser(app.url, uniqueEmail('terminated'));
      // the pass's transaction, idle while the publishes travel
      await waitFor(
        async () => {
          const killed = await db.query<{ done: boolean }>(
            `SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity
              WHERE datname = current_database() AND state = 'idle in transaction' AND pid <> pg_backend_pid()`,
          );
          terminated += killed.rows.length;
          return terminated > 0;
        },
        5000,
        20,
      );
    } finally {
      proxy.setLatency(0);
    }
    await waitFor(async () => (await cursor()) === (await lastSeq()), 15_000, 100);
    expect(await cursor()).toBeGreaterThan(before);
    expect((await http(app.url, 'GET', '/ready')).status).toBe(200);
  }, 40_000);
});
