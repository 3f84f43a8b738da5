import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PRUNE_BATCH } from '../../src/retention/retention.repository';
import { RetentionService } from '../../src/retention/retention.service';
import { bootApp, type TestApp } from '../support/app';
import { signupUser } from '../support/auth-flows';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { http } from '../support/http';
import { servicesAvailable } from '../support/services';

const available = servicesAvailable({ postgres: true });
const DAY = 24 * 3600 * 1000;
const ago = (ms: number) => new Date(Date.now() - ms);

describe.skipIf(!available)('retention', () => {
  let db: TestDatabase;
  let app: TestApp;
  let userId: string;

  beforeAll(async () => {
    db = await createTestDatabase();
    // RETENTION_PERIOD 1 day; the background job off, so each test runs a round itself
    app = await bootApp({ DATABASE_URL: db.url, RETENTION_PERIOD: '86400', RETENTION_INTERVAL: '0', AUTH_WINDOW: '900' });
    userId = (await signupUser(app.url)).userId;
  });
  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });

  /** One row per table past the retention period (`old-*`) and one still within it or live (`new-*`). */
  async function seed(tag: string): Promise<void> {
    const q = (text: string, params: unknown[]) => db.query(text, params);
    const session = async (id: string, expires: Date, revoked: Date | null) =>
      q(`INSERT INTO sessions (id, user_id, amr, expires_at, revoked_at) VALUES ($1, $2, '{pwd}', $3, $4)`, [id, userId, expires, revoked]);
    await session(`old-expired-${tag}`, ago(2 * DAY), null);
    await session(`old-revoked-${tag}`, new Date(Date.now() + 30 * DAY), ago(2 * DAY));
    await session(`new-expired-${tag}`, ago(DAY / 2), null);
    await session(`new-live-${tag}`, new Date(Date.now() + 30 * DAY), null);
    const refresh = async (id: string, sessionId: string, expires: Date) =>
      q(`INSERT INTO refresh_tokens (id, session_id, token_hash, expires_at) VALUES ($1, $2, $3, $4)`, [
        id,
        sessionId,
        randomUUID(),
        expires,
      ]);
    await refresh(`old-rt-${tag}`, `new-live-${tag}`, ago(2 * DAY));
    await refresh(`new-rt-${tag}`, `new-live-${tag}`, new Date(Date.now() + DAY));
    await refresh(`cascade-rt-${tag}`, `old-expired-${tag}`, new Date(Date.now() + DAY));
    for (const [prefix, expires, used] of [
      ['old', ago(2 * DAY), null],
      ['oldused', new Date(Date.now() + DAY), ago(2 * DAY)],
      ['new', ago(DAY / 2), null],
    ] as const) {
      await q(
        `INSERT INTO email_tokens (id, user_id, purpose, token_hash, expires_at, used_at) VALUES ($1, $2, 'verify_email', $3, $4, $5)`,
        [`${prefix}-et-${tag}`, userId, randomUUID(), expires, used],
      );
      await q(`INSERT INTO mfa_challenges (id, token_hash, user_id, amr, expires_at, used_at) VALUES ($1, $2, $3, '{pwd}', $4, $5)`, [
        `${prefix}-mc-${tag}`,
        randomUUID(),
        userId,
        expires,
        used,
      ]);
      await q(`INSERT INTO oidc_states (id, state_hash, sealed, expires_at, used_at) VALUES ($1, $2, 'x', $3, $4)`, [
        `${prefix}-os-${tag}`,
        randomUUID(),
        expires,
        used,
      ]);
      await q(`INSERT INTO oidc_login_codes (id, code_hash, user_id, amr, expires_at, used_at) VALUES ($1, $2, $3, '{google}', $4, $5)`, [
        `${prefix}-oc-${tag}`,
        randomUUID(),
        userId,
        expires,
        used,
      ]);
    }
    await q(`INSERT INTO rate_limit_counters (key, window_start, count) VALUES ($1, $2, 3), ($3, $4, 3)`, [
      `old-rl-${tag}`,
      ago(2 * DAY),
      `new-rl-${tag}`,
      ago(60_000),
    ]);
  }

  async function idsTagged(tag: string): Promise<string[]> {
    const result = await db.query<{ id: string }>(
      `SELECT id FROM sessions WHERE id LIKE $1 UNION ALL SELECT id FROM refresh_tokens WHERE id LIKE $1
       UNION ALL SELECT id FROM email_tokens WHERE id LIKE $1 UNION ALL SELECT id FROM mfa_challenges WHERE id LIKE $1
       UNION ALL SELECT id FROM oidc_states WHERE id LIKE $1 UNION ALL SELECT id FROM oidc_login_codes WHERE id LIKE $1
       UNION ALL SELECT key FROM rate_limit_counters WHERE key LIKE $1`,
      [`%-${tag}`],
    );
    return result.rows.map((row) => row.id).sort();
  }

  it('deletes what expired, was revoked or was used before the retention period, keeps the rest and the audit trail', async () => {
    await seed('a');
    const auditBefore = (await db.query<{ n: string }>('SELECT count(*) AS n FROM audit_records')).rows[0]!.n;
    expect(Number(auditBefore)).toBeGreaterThan(0);
    const result = await app.gatehouse.app.get(RetentionService).pruneOnce();
    expect(result).toMatchObject({
      sessions: 2,
      refresh_tokens: 1, // the expired one; the cascade-rt row went with its session
      email_tokens: 2,
      mfa_challenges: 2,
      oidc_states: 2,
      oidc_login_codes: 2,
      rate_limit_counters: 1,
    });
    expect(await idsTagged('a')).toEqual(
      ['new-et-a', 'new-expired-a', 'new-live-a', 'new-mc-a', 'new-oc-a', 'new-os-a', 'new-rl-a', 'new-rt-a'].sort(),
    );
    const auditAfter = (await db.query<{ n: string }>('SELECT count(*) AS n FROM audit_records')).rows[0]!.n;
    expect(auditAfter).toBe(auditBefore);
    const metrics = (await http(app.url, 'GET', '/metrics')).text;
    expect(metrics).toMatch(/^gatehouse_retention_pruned_rows_total\{table="sessions"\} 2$/m);
    expect(metrics).toMatch(/^gatehouse_retention_runs_total\{outcome="ok"\} 1$/m);
  });

  it('runs on one replica at a time: while another holds the lock, a round deletes nothing', async () => {
    await seed('b');
    const other = new pg.Client({ connectionString: db.url });
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query('SELECT pg_advisory_xact_lock(7236801514)');
      expect(await app.gatehouse.app.get(RetentionService).pruneOnce()).toBeNull();
      expect(await idsTagged('b')).toContain('old-expired-b');
      await other.query('COMMIT');
    } finally {
      await other.end();
    }
    const result = await app.gatehouse.app.get(RetentionService).pruneOnce();
    expect(result?.sessions).toBe(2);
    expect(await idsTagged('b')).not.toContain('old-expired-b');
    expect((await http(app.url, 'GET', '/metrics')).text).toMatch(/^gatehouse_retention_runs_total\{outcome="skipped"\} 1$/m);
  });

  it('prunes a backlog larger than one batch in several short statements, and keeps what is still current', async () => {
    const backlog = PRUNE_BATCH * 2 + 500;
    await db.query(
      `INSERT INTO rate_limit_counters (key, window_start, count)
       SELECT 'backlog-' || n, now() - interval '3 days', 1 FROM generate_series(1, $1::int) AS n`,
      [backlog],
    );
    await db.query(`INSERT INTO rate_limit_counters (key, window_start, count) VALUES ('backlog-current', now(), 1)`);
    const result = await app.gatehouse.app.get(RetentionService).pruneOnce();
    expect(result?.rate_limit_counters).toBeGreaterThanOrEqual(backlog);
    const left = await db.query<{ key: string }>(`SELECT key FROM rate_limit_counters WHERE key LIKE 'backlog-%'`);
    expect(left.rows).toEqual([{ key: 'backlog-current' }]);
  });
});
