import { createHash } from 'node:crypto';
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
  changes: unknown;
  prev_hash: string;
}

export function chainHash(content: ChainedContent): string {
  return createHash('sha256').update(canonicalJson(content), 'utf8').digest('hex');
}
