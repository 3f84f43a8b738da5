import { z } from 'zod';
import type { AuditFilter } from './audit.repository';

/** Cursors are opaque to clients: base64url of the seq the next page starts below. */
export function encodeAuditCursor(seq: bigint): string {
  return Buffer.from(seq.toString(), 'utf8').toString('base64url');
}

export function decodeAuditCursor(cursor: string): bigint | undefined {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  return /^[1-9][0-9]{0,18}$/.test(text) ? BigInt(text) : undefined;
}

const id = z.string().trim().min(1).max(200);
const timestamp = z
  .union([z.iso.datetime({ offset: true }), z.iso.date()])
  .transform((value) => new Date(value))
  .describe('ISO-8601 timestamp (a bare date means 00:00 UTC)');

const filterFields = {
  actor_id: id.optional().describe('principal id of the actor'),
  target_id: id.optional().describe('id of the record target'),
  // tenant id syntax of CONTRACT §5
  tenant_id: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{1,62}$/, 'must be a tenant id')
    .optional()
    .describe('tenant id; a tenant-scoped caller (x-tenant-id) only ever sees its own tenant'),
  action: id.optional().describe('exact action, e.g. auth.account_locked'),
  from: timestamp.optional().describe('records at or after this instant (inclusive)'),
  to: timestamp.optional().describe('records before this instant (exclusive)'),
};

export const auditExportQuery = z.object(filterFields);

export const auditListQuery = z.object({
  ...filterFields,
  limit: z.coerce.number().int().min(1).max(200).default(50).describe('page size, 1..200'),
  cursor: z
    .string()
    .max(64)
    .transform((value, context) => {
      const seq = decodeAuditCursor(value);
      if (seq === undefined) {
        context.addIssue({ code: 'custom', message: 'is not a cursor returned by this endpoint' });
        return z.NEVER;
      }
      return seq;
    })
    .optional()
    .describe('next_cursor of the previous page'),
});

export type AuditExportQuery = z.infer<typeof auditExportQuery>;
export type AuditListQuery = z.infer<typeof auditListQuery>;

/** The caller's filter; `scopeTenantId` is the tenant a tenant-scoped caller is confined to. */
export function auditFilterOf(query: AuditExportQuery, scopeTenantId: string | undefined): AuditFilter {
  return {
    actorId: query.actor_id,
    targetId: query.target_id,
    tenantId: query.tenant_id,
    action: query.action,
    from: query.from,
    to: query.to,
    scopeTenantId,
  };
}
