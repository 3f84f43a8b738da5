import { createHash, randomBytes } from 'node:crypto';
import { canonicalJson } from './canonical-json';

export const GENESIS_HASH = '0'.repeat(64);

/** The fields a record's hash covers (everything but the hash itself). */
export interface ChainedContent {
  seq: string;
  id: string;
  at: string;
  actor: { principal_id: string | null; principal_type: string | null; ip: string | null; user_agent: string | null };
  action: string;
  target: { type: string | null; id: string | null };
  tenant_id: string | null;
  request_id: string | null;
  correlation_id: string | null;
  /**
   * Present only when the record has one: a record without a trace id (all records written
   * before the column existed, and records written outside a request) hashes exactly as before.
   */
  trace_id?: string;
  changes: unknown;
  prev_hash: string;
}

export function chainHash(content: ChainedContent): string {
  return createHash('sha256').update(canonicalJson(content), 'utf8').digest('hex');
}

/** The three values only the database knows at append time (audit_append() assigns them under the chain lock). */
const MARK = `\u0000${randomBytes(12).toString('hex')}`;
const PLACEHOLDERS = { at: `${MARK}at`, prev_hash: `${MARK}prev`, seq: `${MARK}seq` } as const;

/**
 * The record's canonical JSON in four pieces around `at`, `prev_hash` and `seq`, which
 * canonical key order puts in that order: parts[0] + at + parts[1] + prev_hash + parts[2] + seq + parts[3].
 * audit_append() (SQL) hashes exactly that; `hashOfParts` is the same in TypeScript.
 */
export function chainParts(content: Omit<ChainedContent, 'at' | 'prev_hash' | 'seq'>): [string, string, string, string] {
  const json = canonicalJson({ ...content, at: PLACEHOLDERS.at, prev_hash: PLACEHOLDERS.prev_hash, seq: PLACEHOLDERS.seq });
  // JSON.stringify writes U+0000 as \u0000, and the marks are random per process
  const marks = [PLACEHOLDERS.at, PLACEHOLDERS.prev_hash, PLACEHOLDERS.seq].map((mark) => JSON.stringify(mark).slice(1, -1));
  const parts: string[] = [];
  let rest = json;
  for (const mark of marks) {
    const at = rest.indexOf(mark);
    if (at < 0 || rest.indexOf(mark, at + 1) >= 0) throw new Error('audit chain: placeholder not found exactly once');
    parts.push(rest.slice(0, at));
    rest = rest.slice(at + mark.length);
  }
  parts.push(rest);
  return parts as [string, string, string, string];
}

/** What audit_append() computes: the chain hash from the pieces and the three late values. */
export function hashOfParts(parts: readonly string[], at: string, prevHash: string, seq: string): string {
  return createHash('sha256')
    .update(parts[0] + at + parts[1] + prevHash + parts[2] + seq + parts[3], 'utf8')
    .digest('hex');
}
