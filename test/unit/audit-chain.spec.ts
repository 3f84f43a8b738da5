import { describe, expect, it } from 'vitest';
import { chainHash, chainParts, GENESIS_HASH, hashOfParts } from '../../src/audit/audit-chain';
import { auditListQuery, decodeAuditCursor, encodeAuditCursor } from '../../src/audit/audit-query.dto';
import { auditRecordView, chainBreak, chainedContentOf, CHAIN_START, type ChainPosition } from '../../src/audit/audit-record';
import { auditSubject } from '../../src/audit/audit-publisher.service';
import { AuditRepository, type AuditContent } from '../../src/audit/audit.repository';
import { AuditService } from '../../src/audit/audit.service';
import { requestContext } from '../../src/common/request-context';
import { canonicalJson } from '../../src/audit/canonical-json';
import type { AuditRecord, Prisma } from '../../src/generated/prisma/client';

/**
 * An AuditRepository whose appendPending does in memory what audit_pending's commit trigger does
 * with audit_append() in SQL (head, seq + 1, `at` in milliseconds, the hash over the pieces), as
 * AuditService calls it (no transaction here: the "commit" is at once).
 */
class MemoryAuditRepository extends AuditRepository {
  constructor(private readonly rows: AuditRecord[]) {
    super();
  }

  override appendPending(_db: unknown, record: AuditContent, parts: readonly string[]): Promise<void> {
    const last = this.rows.at(-1);
    const seq = (last?.seq ?? 0n) + 1n;
    const prevHash = last?.hash ?? GENESIS_HASH;
    const at = new Date();
    const row: AuditRecord = {
      seq,
      id: record.id,
      at,
      actorId: record.actor.principal_id,
      actorType: record.actor.principal_type,
      actorIp: record.actor.ip,
      actorUserAgent: record.actor.user_agent,
      action: record.action,
      targetType: record.target.type,
      targetId: record.target.id,
      tenantId: record.tenant_id,
      requestId: record.request_id,
      correlationId: record.correlation_id,
      traceId: record.trace_id ?? null,
      // what PostgreSQL's jsonb gives back: the JSON form
      changes: record.changes === null ? null : (JSON.parse(JSON.stringify(record.changes)) as AuditRecord['changes']),
      prevHash,
      hash: hashOfParts(parts, at.toISOString(), prevHash, seq.toString()),
    };
    this.rows.push(row);
    return Promise.resolve();
  }
}

const noTransaction = {} as Prisma.TransactionClient;

async function chainOf(count: number): Promise<AuditRecord[]> {
  const rows: AuditRecord[] = [];
  const audit = new AuditService(new MemoryAuditRepository(rows));
  for (let index = 0; index < count; index += 1) {
    await audit.record(noTransaction, {
      action: index % 2 === 0 ? 'auth.signin' : 'iam.user.disable',
      actor: { principalId: `user-${index}`, principalType: 'user' },
      target: { type: 'user', id: `target-${index}` },
      tenantId: index % 3 === 0 ? 'acme' : null,
      changes: { index, nested: { b: 1, a: [1, 'two', null] } },
    });
  }
  return rows;
}

function firstBreak(rows: AuditRecord[]): { seq: number; reason: string } | null {
  let position: ChainPosition = CHAIN_START;
  for (const row of rows) {
    const reason = chainBreak(position, row);
    if (reason !== null) return { seq: Number(row.seq), reason };
    position = { seq: row.seq, hash: row.hash };
  }
  return null;
}

describe('audit hash chain', () => {
  it('links records written by AuditService from the genesis hash, seq 1, 2, 3…', async () => {
    const rows = await chainOf(5);
    expect(rows.map((row) => row.seq)).toEqual([1n, 2n, 3n, 4n, 5n]);
    expect(rows[0]!.prevHash).toBe(GENESIS_HASH);
    expect(rows[3]!.prevHash).toBe(rows[2]!.hash);
    expect(firstBreak(rows)).toBeNull();
  });

  it('hashes changes in their stored (JSON) form, so Dates and undefined fields still verify', async () => {
    const rows: AuditRecord[] = [];
    await new AuditService(new MemoryAuditRepository(rows)).record(noTransaction, {
      action: 'session.refresh_reuse_detected',
      changes: { spent_at: new Date('2026-01-02T03:04:05.678Z'), dropped: undefined, list: [undefined, 1] },
    });
    expect(rows[0]!.changes).toEqual({ spent_at: '2026-01-02T03:04:05.678Z', list: [null, 1] });
    expect(firstBreak(rows)).toBeNull();
  });

  it('finds an altered field at the altered record', async () => {
    const rows = await chainOf(6);
    rows[3] = { ...rows[3]!, changes: { forged: true } };
    expect(firstBreak(rows)).toEqual({ seq: 4, reason: 'hash_mismatch' });
    const renamed = await chainOf(6);
    renamed[1] = { ...renamed[1]!, action: 'auth.signin_failed' };
    expect(firstBreak(renamed)).toEqual({ seq: 2, reason: 'hash_mismatch' });
  });

  it('records the request’s trace id, covered by the hash; a record without one hashes as records did before the column', async () => {
    const rows: AuditRecord[] = [];
    const audit = new AuditService(new MemoryAuditRepository(rows));
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const context = {
      requestId: 'req-1',
      correlationId: 'corr-1',
      traceId,
      spanId: '00f067aa0ba902b7',
      traceFlags: '01',
      clientIp: '127.0.0.1',
    };
    await requestContext.run(context, () => audit.record(noTransaction, { action: 'iam.user.create', target: { type: 'user', id: 'u1' } }));
    await audit.record(noTransaction, { action: 'platform.keys.rotate' });
    expect(rows.map((row) => row.traceId)).toEqual([traceId, null]);
    expect(auditRecordView(rows[0]!).trace_id).toBe(traceId);
    expect(auditRecordView(rows[1]!).trace_id).toBeNull();
    expect(firstBreak(rows)).toBeNull();

    // without a trace id the hashed JSON is exactly the pre-trace_id form (no trace_id key at all)
    const { trace_id: absent, ...withoutTrace } = chainedContentOf(rows[1]!);
    expect(absent).toBeUndefined();
    expect(rows[1]!.hash).toBe(chainHash(withoutTrace));
    // with one, the hash covers it: another trace id, or none, breaks the record
    const edited = [...rows];
    edited[0] = { ...rows[0]!, traceId: 'ffffffffffffffffffffffffffffffff' };
    expect(firstBreak(edited)).toEqual({ seq: 1, reason: 'hash_mismatch' });
    edited[0] = { ...rows[0]!, traceId: null };
    expect(firstBreak(edited)).toEqual({ seq: 1, reason: 'hash_mismatch' });
  });

  it('finds a re-hashed forgery at the next record, whose link no longer holds', async () => {
    const rows = await chainOf(6);
    const forged = { ...rows[2]!, actorId: 'someone-else' };
    rows[2] = { ...forged, hash: chainHash(chainedContentOf(forged)) };
    expect(firstBreak(rows)).toEqual({ seq: 4, reason: 'prev_hash_mismatch' });
  });

  it('finds a deleted record at the record after the gap, and a deleted first record at the new first', async () => {
    const rows = await chainOf(6);
    expect(firstBreak([...rows.slice(0, 2), ...rows.slice(3)])).toEqual({ seq: 4, reason: 'seq_gap' });
    expect(firstBreak(rows.slice(1))).toEqual({ seq: 2, reason: 'seq_gap' });
  });

  it('splits the canonical JSON around at, prev_hash and seq exactly as chainHash hashes it', () => {
    const content = {
      id: 'r1',
      actor: { principal_id: 'u\u0000"x', principal_type: 'user', ip: null, user_agent: 'at prev_hash seq' },
      action: 'auth.signin',
      target: { type: 'session', id: 's1' },
      tenant_id: null,
      request_id: 'req',
      correlation_id: null,
      changes: { at: 'x', seq: 1, prev_hash: ['y'], nested: { é: '∑' } },
    };
    const whole = { ...content, at: '2026-01-02T03:04:05.678Z', prev_hash: 'f'.repeat(64), seq: '42' };
    expect(hashOfParts(chainParts(content), whole.at, whole.prev_hash, whole.seq)).toBe(chainHash(whole));
  });

  it('canonical JSON does not depend on key order', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, { y: 1, x: 2 }], c: null } })).toBe(
      canonicalJson({ a: { c: null, d: [2, { x: 2, y: 1 }] }, b: 1 }),
    );
    expect(canonicalJson({ a: 1, skipped: undefined })).toBe('{"a":1}');
  });

  it('shows records in the contract shape, seq as a JSON number', async () => {
    const [row] = await chainOf(1);
    const view = auditRecordView(row!);
    expect(Object.keys(view)).toEqual([
      'id',
      'seq',
      'at',
      'actor',
      'action',
      'target',
      'tenant_id',
      'request_id',
      'correlation_id',
      'trace_id',
      'changes',
      'prev_hash',
      'hash',
    ]);
    expect(view.seq).toBe(1);
    expect(view.actor).toEqual({ principal_id: 'user-0', principal_type: 'user', ip: null, user_agent: null });
    expect(JSON.parse(JSON.stringify(view)).seq).toBe(1);
  });
});

describe('audit list query and cursor', () => {
  it('round-trips cursors and refuses anything else', () => {
    expect(decodeAuditCursor(encodeAuditCursor(123456789012n))).toBe(123456789012n);
    for (const bad of [
      '',
      'not-a-cursor',
      Buffer.from('-1').toString('base64url'),
      Buffer.from('0').toString('base64url'),
      Buffer.from('12a').toString('base64url'),
    ]) {
      expect(decodeAuditCursor(bad), bad).toBeUndefined();
    }
  });

  it('defaults limit to 50, bounds it to 1..200 and parses the filters', () => {
    expect(auditListQuery.parse({}).limit).toBe(50);
    expect(auditListQuery.safeParse({ limit: '0' }).success).toBe(false);
    expect(auditListQuery.safeParse({ limit: '201' }).success).toBe(false);
    expect(auditListQuery.safeParse({ limit: '200' }).success).toBe(true);
    expect(auditListQuery.safeParse({ cursor: 'garbage!' }).success).toBe(false);
    expect(auditListQuery.safeParse({ tenant_id: 'Not A Tenant' }).success).toBe(false);
    expect(auditListQuery.safeParse({ from: 'yesterday' }).success).toBe(false);
    const parsed = auditListQuery.parse({ from: '2026-01-01', to: '2026-01-02T10:00:00+02:00', cursor: encodeAuditCursor(9n) });
    expect(parsed.from?.toISOString()).toBe('2026-01-01T00:00:00.000Z');
    expect(parsed.to?.toISOString()).toBe('2026-01-02T08:00:00.000Z');
    expect(parsed.cursor).toBe(9n);
  });
});

describe('audit JetStream subjects', () => {
  it('is gatehouse.audit.<action>, with characters a subject cannot carry replaced', () => {
    expect(auditSubject('iam.user.disable')).toBe('gatehouse.audit.iam.user.disable');
    expect(auditSubject('auth.signin_failed')).toBe('gatehouse.audit.auth.signin_failed');
    expect(auditSubject('odd action.*.>')).toBe('gatehouse.audit.odd_action._._');
    expect(auditSubject('a..b')).toBe('gatehouse.audit.a._.b');
  });
});
