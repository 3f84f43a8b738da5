import { randomInt } from 'node:crypto';
import { Injectable } from '@nestjs/common';
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

/** pg_try_advisory_xact_lock key ("audp"): one replica at a time advances the publish cursor. */
const PUBLISH_LOCK = 0x61756470;

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
   * Takes the publisher lock for the rest of `tx`, or returns false at once when another
   * replica holds it (that replica is publishing the same records).
   */
  async tryLockPublisher(tx: Db): Promise<boolean> {
    const rows = await tx.$queryRaw<Array<{ locked: boolean }>>`SELECT pg_try_advisory_xact_lock(${PUBLISH_LOCK}) AS locked`;
    return rows[0]?.locked === true;
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

  /** Lets the publisher's transaction `tx` sit idle up to `ms` (waiting for JetStream's acks) before the server ends the session. */
  async allowPublisherIdle(tx: Db, ms: number): Promise<void> {
    await tx.$executeRawUnsafe(`SET LOCAL idle_in_transaction_session_timeout = '${Math.trunc(ms)}ms'`);
  }

  async writePublishCursor(db: Db, seq: bigint): Promise<void> {
    const value = seq.toString();
    await db.systemSetting.upsert({ where: { key: PUBLISH_CURSOR_KEY }, create: { key: PUBLISH_CURSOR_KEY, value }, update: { value } });
  }
}
