import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chainBreak, CHAIN_START, type ChainPosition } from '../../src/audit/audit-record';
import { AuditRepository } from '../../src/audit/audit.repository';
import { AuditService } from '../../src/audit/audit.service';
import { MIGRATIONS_DIR } from '../../src/database/database.module';
import { applyMigrations } from '../../src/database/migrator';
import { PrismaService } from '../../src/database/prisma.service';
import type { AuditRecord } from '../../src/generated/prisma/client';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { servicesAvailable } from '../support/services';

const available = servicesAvailable({ postgres: true });

/**
 * The chain link made at COMMIT (audit_pending's deferred trigger, migration
 * *_audit_chain_at_commit), from two pools as two replicas would: gap-free, verifying, and
 * nothing left by a transaction that rolls back, before or during its commit.
 */
describe.skipIf(!available)('audit records chained at commit', () => {
  let db: TestDatabase;
  let replicas: PrismaService[];
  const audit = new AuditService(new AuditRepository());

  beforeAll(async () => {
    db = await createTestDatabase('gh_auditc');
    await applyMigrations(db.url, MIGRATIONS_DIR, () => undefined);
    replicas = [new PrismaService(db.url, 5), new PrismaService(db.url, 5)];
  });
  afterAll(async () => {
    await Promise.all(replicas?.map((prisma) => prisma.$disconnect()) ?? []);
    await db?.drop();
  });

  const chain = () => replicas[0]!.auditRecord.findMany({ orderBy: { seq: 'asc' } });
  const firstBreak = (rows: AuditRecord[]): string | null => {
    let position: ChainPosition = CHAIN_START;
    for (const row of rows) {
      const reason = chainBreak(position, row);
      if (reason !== null) return `seq ${row.seq}: ${reason}`;
      position = { seq: row.seq, hash: row.hash };
    }
    return null;
  };
  const pending = async () => Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM audit_pending')).rows[0]!.n);

  it('keeps one gap-free, verifying chain under 160 concurrent transactions from two pools, a quarter of them rolled back', async () => {
    const before = (await chain()).length;
    const outcomes = await Promise.allSettled(
      Array.from({ length: 160 }, (_, index) =>
        replicas[index % 2]!.$transaction(async (tx) => {
          const { id } = await audit.record(tx, { action: 'test.concurrent', target: { type: 'n', id: String(index) } });
          // a second record in the same transaction: both or neither
          await audit.record(tx, { action: 'test.concurrent.second', target: { type: 'n', id: String(index) } });
          await tx.$executeRaw`SELECT pg_sleep(${(index % 5) / 1000})`;
          if (index % 4 === 3) throw new Error(`rolled back ${id}`);
          return id;
        }),
      ),
    );
    const committed = outcomes.flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value] : []));
    expect(committed).toHaveLength(120);
    expect(outcomes.filter((outcome) => outcome.status === 'rejected')).toHaveLength(40);

    const rows = await chain();
    expect(rows.map((row) => Number(row.seq))).toEqual(Array.from({ length: rows.length }, (_, index) => index + 1));
    expect(rows.length - before).toBe(240);
    const targets = rows.filter((row) => row.action === 'test.concurrent').map((row) => Number(row.targetId));
    expect(targets.sort((x, y) => x - y)).toEqual(Array.from({ length: 160 }, (_, index) => index).filter((index) => index % 4 !== 3));
    expect(new Set(rows.map((row) => row.id)).size).toBe(rows.length);
    expect(rows.filter((row) => committed.includes(row.id))).toHaveLength(120);
    // each transaction's two records are adjacent: the chain lock is held from the first to the commit
    for (const [index, row] of rows.entries()) {
      if (row.action === 'test.concurrent') {
        expect([rows[index + 1]?.action, rows[index + 1]?.targetId]).toEqual(['test.concurrent.second', row.targetId]);
      }
    }
    expect(firstBreak(rows)).toBeNull();
    expect(await pending()).toBe(0);
  });

  it('leaves no record and no gap when the transaction rolls back after its record was queued, or fails during COMMIT', async () => {
    await db.query(`CREATE TABLE commit_fails (x int)`);
    await db.query(`CREATE FUNCTION commit_fails() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'refused at commit'; END $$`);
    // deferred too, and queued after the audit row: it runs after the chain link was made
    await db.query(`CREATE CONSTRAINT TRIGGER commit_fails AFTER INSERT ON commit_fails
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION commit_fails()`);
    const head = async () => (await chain()).at(-1)!;
    const start = await head();

    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const queue = async (id: string) => {
        const prepared = audit.prepare({ action: 'test.rollback' });
        await client.query(`INSERT INTO audit_pending (id, action, parts) VALUES ($1, 'test.rollback', $2)`, [id, prepared.parts]);
      };
      await client.query('BEGIN');
      await queue('00000000-0000-4000-8000-000000000001');
      await client.query('ROLLBACK');

      await client.query('BEGIN');
      await queue('00000000-0000-4000-8000-000000000002');
      await client.query('INSERT INTO commit_fails VALUES (1)');
      await expect(client.query('COMMIT')).rejects.toThrow('refused at commit');
    } finally {
      await client.end();
    }
    expect((await head()).seq).toBe(start.seq);
    expect(await pending()).toBe(0);

    // the next append takes the very next seq and links to the same head
    await replicas[1]!.$transaction((tx) => audit.record(tx, { action: 'test.after_rollback' }));
    const next = await head();
    expect([next.seq, next.prevHash, next.action]).toEqual([start.seq + 1n, start.hash, 'test.after_rollback']);
    expect(firstBreak(await chain())).toBeNull();
  });

  it('appends at once outside a transaction (autocommit), with seq and hash from the database', async () => {
    const start = (await chain()).at(-1)!;
    await audit.record(replicas[0]!, { action: 'test.autocommit' });
    const rows = await chain();
    expect([rows.at(-1)!.seq, rows.at(-1)!.action]).toEqual([start.seq + 1n, 'test.autocommit']);
    expect(firstBreak(rows)).toBeNull();
  });
});
