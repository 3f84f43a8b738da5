import { randomInt } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import type pg from 'pg';
import { queryPrepared, type PrismaService, type PreparedStatement } from '../database/prisma.service';
import type { Db } from '../database/transaction';
import type { AuditRecord, Prisma } from '../generated/prisma/client';
import type { ChainedContent } from './audit-chain';

/** A record's fields as AuditService hashes them, less the three audit_append() assigns (at, prev_hash, seq). */
export type AuditContent = Omit<ChainedContent, 'at' | 'prev_hash' | 'seq'>;

/** What a reader asks for; every field narrows the result. */
export interface AuditFilter {
  actorId?: string;
  targetId?: string;
  tenantId?: string;
  action?: string;
  /** inclusive */
  from?: Date;
  /** exclusive */
  to?: Date;
  /**
   * The tenant a tenant-scoped caller is confined to. Applied on top of `tenantId` (both must
   * hold), so asking for another tenant's records gives nothing rather than widening the view.
   */
  scopeTenantId?: string;
}

/** system_settings key holding the seq of the last record acknowledged by JetStream. */
const PUBLISH_CURSOR_KEY = 'audit_publish_cursor';
/** One record into audit_pending (its deferred trigger chains it at commit). */
const APPEND_PENDING: PreparedStatement = {
  name: 'audit_append_pending',
  text: `INSERT INTO audit_pending (id, actor_id, actor_type, actor_ip, actor_user_agent, action, target_type, target_id,
      tenant_id, request_id, correlation_id, trace_id, changes, parts)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14::text[])`,
};
const HAS_UNPUBLISHED: PreparedStatement = {
  name: 'audit_has_unpublished',
  text: `SELECT EXISTS (SELECT 1 FROM audit_records
    WHERE seq > COALESCE((SELECT value::bigint FROM system_settings WHERE key = $1), 0)) AS pending`,
};

/**
 * The publisher's batch, from audit_publish_batch() (migration *_audit_publish_batch: the idle
 * limit, the publisher lock "audp", the records past the cursor in chain order, with its plan
 * cached for the session). ORDER BY names the function's column: a bare `seq` would be the output
 * column `seq::text`, ordered as text (…, 8, 9 after 10, 11, 12; with a backlog over the limit
 * across 99 → 100 the batch missed records below its last one and the cursor skipped them for
 * good: docs/decisions.md).
 */
const NEXT_UNPUBLISHED_COLUMNS = `b.seq::text AS seq, b.id, b.at, b.actor_id AS "actorId", b.actor_type AS "actorType", b.actor_ip AS "actorIp",
      b.actor_user_agent AS "actorUserAgent", b.action, b.target_type AS "targetType", b.target_id AS "targetId",
      b.tenant_id AS "tenantId", b.request_id AS "requestId", b.correlation_id AS "correlationId", b.trace_id AS "traceId",
      b.changes, b.prev_hash AS "prevHash", b.hash`;

/** A row of the batch as `pg` decodes it (seq as text: int8 is a string in `pg`). */
type AuditRecordRow = Omit<AuditRecord, 'seq'> & { seq: string };

function whereOf(filter: AuditFilter, seq: Prisma.AuditRecordWhereInput['seq']): Prisma.AuditRecordWhereInput {
  const and: Prisma.AuditRecordWhereInput[] = [];
  if (seq !== undefined) and.push({ seq });
  if (filter.actorId !== undefined) and.push({ actorId: filter.actorId });
  if (filter.targetId !== undefined) and.push({ targetId: filter.targetId });
  if (filter.tenantId !== undefined) and.push({ tenantId: filter.tenantId });
  if (filter.scopeTenantId !== undefined) and.push({ tenantId: filter.scopeTenantId });
  if (filter.action !== undefined) and.push({ action: filter.action });
  if (filter.from !== undefined) and.push({ at: { gte: filter.from } });
  if (filter.to !== undefined) and.push({ at: { lt: filter.to } });
  return { AND: and };
}

/**
 * The append-only audit trail (appends go through AuditService.record only, which chains them) and the
 * JetStream publisher's cursor. Every read is keyset-paginated on seq, never OFFSET.
 */
@Injectable()
export class AuditRepository {
  /** The chain's head (seq and hash of the last record), or null before the first. */
  last(db: Db): Promise<{ seq: bigint; hash: string } | null> {
    return db.auditRecord.findFirst({ orderBy: { seq: 'desc' }, select: { seq: true, hash: true } });
  }

  /**
   * Queues one record for the chain: a plain insert into audit_pending, whose deferred trigger
   * (migration *_audit_chain_at_commit) appends it with audit_append() while the transaction
   * commits. audit_append() takes the chain lock there and assigns seq, `at`, prev_hash and the
   * hash, so the lock is held for the commit only, never for a round trip to this process.
   */
  async appendPending(db: Db, record: AuditContent, parts: readonly string[]): Promise<void> {
    await queryPrepared(db, APPEND_PENDING, [
      record.id,
      record.actor.principal_id,
      record.actor.principal_type,
      record.actor.ip,
      record.actor.user_agent,
      record.action,
      record.target.type,
      record.target.id,
      record.tenant_id,
      record.request_id,
      record.correlation_id,
      record.trace_id ?? null,
      record.changes === null ? null : JSON.stringify(record.changes),
      parts,
    ]);
  }

  /**
   * Benchmark only (BENCH_AUDIT_PLAIN_INSERT): the same row as a plain insert, outside the chain
   * (no hash). Its seq comes from the sequence `audit_bench_plain_seq` when the benchmark created
   * one (started past any chained seq, so the JetStream publisher sends these records as it sends
   * chained ones and the comparison includes publishing); without it, a negative random seq.
   */
  async appendPlain(db: Db, record: AuditContent): Promise<void> {
    const fallback = -BigInt(randomInt(1, 2 ** 47)) * 65536n - BigInt(randomInt(0, 65536));
    await db.$executeRaw`
      INSERT INTO audit_records (seq, id, at, actor_id, actor_type, actor_ip, actor_user_agent, action, target_type,
        target_id, tenant_id, request_id, correlation_id, trace_id, changes, prev_hash, hash)
      VALUES (COALESCE(nextval(to_regclass('audit_bench_plain_seq')), ${fallback}), ${record.id}, now(), ${record.actor.principal_id}, ${record.actor.principal_type}, ${record.actor.ip},
        ${record.actor.user_agent}, ${record.action}, ${record.target.type}, ${record.target.id}, ${record.tenant_id},
        ${record.request_id}, ${record.correlation_id}, ${record.trace_id ?? null}, ${record.changes === null ? null : JSON.stringify(record.changes)}::jsonb, '', '')`;
  }

  /** Newest first: records with seq below `beforeSeq` (all when undefined). */
  findNewestFirst(db: Db, filter: AuditFilter, page: { limit: number; beforeSeq?: bigint }): Promise<AuditRecord[]> {
    const where = whereOf(filter, page.beforeSeq === undefined ? undefined : { lt: page.beforeSeq });
    return db.auditRecord.findMany({ where, orderBy: { seq: 'desc' }, take: page.limit });
  }

  /** Chain order: the next `limit` records with seq above `afterSeq`. */
  findInChainOrder(db: Db, filter: AuditFilter, afterSeq: bigint, limit: number): Promise<AuditRecord[]> {
    return db.auditRecord.findMany({ where: whereOf(filter, { gt: afterSeq }), orderBy: { seq: 'asc' }, take: limit });
  }

  /**
   * What changed after `afterSeq` (or, before the first record is known, at or after `since`),
   * in chain order. seq is assigned at commit under the chain lock held through it, so it is also
   * commit order: a record committed later always has a higher seq.
   */
  changesAfter(
    db: Db,
    position: { afterSeq: bigint } | { since: Date },
    limit: number,
  ): Promise<Array<{ seq: bigint; action: string; targetType: string | null; targetId: string | null }>> {
    return db.auditRecord.findMany({
      where: 'afterSeq' in position ? { seq: { gt: position.afterSeq } } : { at: { gte: position.since } },
      orderBy: { seq: 'asc' },
      take: limit,
      select: { seq: true, action: true, targetType: true, targetId: true },
    });
  }

  /**
   * Opens the publisher's transaction on `client` and, in the same round trip (a simple-query
   * message: BEGIN and one call), lets it idle `idleMs`, takes the publisher lock for the rest of
   * it and reads the next `limit` records past the cursor. Empty when there is nothing to publish
   * or another process holds the lock (it is publishing the same records); the transaction is
   * open either way (`endPublishTransaction`). `idleMs`: how long this transaction may sit idle
   * (waiting for JetStream's acks) before the server ends the session; the pool's own limit
   * (DB_TIMEOUT_MS) is shorter than an ack's wait.
   */
  async beginPublisherBatch(client: pg.ClientBase, limit: number, idleMs: number): Promise<AuditRecord[]> {
    const results = (await client.query(
      `BEGIN; SELECT ${NEXT_UNPUBLISHED_COLUMNS} FROM audit_publish_batch(${Math.trunc(limit)}, ${Math.trunc(idleMs)}) b ORDER BY b.seq`,
    )) as unknown as [pg.QueryResult, pg.QueryResult<AuditRecordRow>];
    const batch = results[1].rows.map((row) => ({ ...row, seq: BigInt(row.seq) }));
    // the cursor goes to the batch's last record: out of order, it would skip the ones below it
    for (let index = 1; index < batch.length; index += 1) {
      if (batch[index]!.seq <= batch[index - 1]!.seq) throw new Error('audit publisher: batch not in seq order');
    }
    return batch;
  }

  /**
   * Ends the publisher's transaction: moves the cursor to `seq` (when given) and commits, in one
   * round trip (seq is a bigint, written as a literal; the key is a constant).
   */
  async endPublishTransaction(client: pg.ClientBase, seq: bigint | undefined): Promise<void> {
    if (seq === undefined) {
      await client.query('COMMIT');
      return;
    }
    await client.query(
      `INSERT INTO system_settings (key, value, updated_at) VALUES ('${PUBLISH_CURSOR_KEY}', '${BigInt(seq).toString()}', now())
        ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at; COMMIT`,
    );
  }

  /**
   * Whether a committed record lies past the publish cursor: one prepared statement, outside any
   * transaction, so an idle pass (every second on every process) costs no lock and no transaction.
   */
  async hasUnpublished(prisma: PrismaService): Promise<boolean> {
    const rows = await prisma.prepared<{ pending: boolean }>(HAS_UNPUBLISHED, [PUBLISH_CURSOR_KEY]);
    return rows[0]?.pending === true;
  }

  /** seq of the last record JetStream acknowledged (0 before the first). */
  async readPublishCursor(db: Db): Promise<bigint> {
    const row = await db.systemSetting.findUnique({ where: { key: PUBLISH_CURSOR_KEY } });
    return row === null ? 0n : BigInt(row.value);
  }
}
