import { z } from 'zod';
import type { AuditRecord } from '../generated/prisma/client';
import { chainHash, GENESIS_HASH, type ChainedContent } from './audit-chain';

const nullableString = z.string().nullable();

/** An audit record as the API, the NDJSON export and the JetStream stream show it (CONTRACT §6). */
export const auditRecordSchema = z
  .object({
    id: z.string(),
    seq: z.number().int().min(1).describe('position in the hash chain: 1, 2, 3… with no gaps'),
    at: z.string().describe('ISO-8601 UTC timestamp, millisecond precision'),
    actor: z.object({
      principal_id: nullableString,
      principal_type: z.string().nullable().describe('user | service_account | system, or null for anonymous callers'),
      ip: nullableString,
      user_agent: nullableString,
    }),
    action: z.string().describe('e.g. auth.signin, iam.user.disable'),
    target: z.object({ type: nullableString, id: nullableString }),
    tenant_id: nullableString,
    request_id: nullableString,
    correlation_id: nullableString,
    trace_id: nullableString.describe('W3C trace id (32 hex) of the request that wrote the record; null outside a request'),
    changes: z.record(z.string(), z.unknown()).nullable().describe('what changed; never secrets'),
    prev_hash: z.string().describe('hash of the record with seq - 1 (64 zeros for seq 1)'),
    hash: z.string().describe('sha256 hex of the canonical JSON of every other field (seq as a string; trace_id left out when null)'),
  })
  // a named component in the OpenAPI document
  .meta({ id: 'AuditRecord' });

export type AuditRecordView = z.infer<typeof auditRecordSchema>;

/** The hashed fields of a stored record, exactly as AuditService hashed them when appending it. */
export function chainedContentOf(row: AuditRecord): ChainedContent {
  return {
    seq: row.seq.toString(),
    id: row.id,
    at: row.at.toISOString(),
    actor: { principal_id: row.actorId, principal_type: row.actorType, ip: row.actorIp, user_agent: row.actorUserAgent },
    action: row.action,
    target: { type: row.targetType, id: row.targetId },
    tenant_id: row.tenantId,
    request_id: row.requestId,
    correlation_id: row.correlationId,
    trace_id: row.traceId ?? undefined,
    changes: row.changes ?? null,
    prev_hash: row.prevHash,
  };
}

export function auditRecordView(row: AuditRecord): AuditRecordView {
  return {
    id: row.id,
    // a JSON number (CONTRACT §6); exact up to 2^53 records
    seq: Number(row.seq),
    at: row.at.toISOString(),
    actor: { principal_id: row.actorId, principal_type: row.actorType, ip: row.actorIp, user_agent: row.actorUserAgent },
    action: row.action,
    target: { type: row.targetType, id: row.targetId },
    tenant_id: row.tenantId,
    request_id: row.requestId,
    correlation_id: row.correlationId,
    trace_id: row.traceId,
    changes: (row.changes ?? null) as AuditRecordView['changes'],
    prev_hash: row.prevHash,
    hash: row.hash,
  };
}

/** Where a walk of the chain stands: the last record that checked (seq 0 and the genesis hash before the first). */
export interface ChainPosition {
  seq: bigint;
  hash: string;
}

export const CHAIN_START: ChainPosition = { seq: 0n, hash: GENESIS_HASH };

/**
 * Why `row` does not follow `previous` in the chain, or null when it does: its seq must be the
 * next one, its prev_hash the previous record's hash, and its hash must recompute from its fields.
 */
export function chainBreak(previous: ChainPosition, row: AuditRecord): 'seq_gap' | 'prev_hash_mismatch' | 'hash_mismatch' | null {
  if (row.seq !== previous.seq + 1n) return 'seq_gap';
  if (row.prevHash !== previous.hash) return 'prev_hash_mismatch';
  if (chainHash(chainedContentOf(row)) !== row.hash) return 'hash_mismatch';
  return null;
}
