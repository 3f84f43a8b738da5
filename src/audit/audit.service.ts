import { randomUUID } from 'node:crypto';
import { Inject, Injectable, Optional } from '@nestjs/common';
import { requestContext } from '../common/request-context';
import { APP_CONFIG, type AppConfig } from '../config/config';
import type { Prisma } from '../generated/prisma/client';
import { chainParts } from './audit-chain';
import { AuditRepository, type AuditContent } from './audit.repository';

/** A record ready for audit_append(): its fields and its canonical JSON in four pieces (chainParts). */
export interface PreparedAuditRecord {
  content: AuditContent;
  parts: [string, string, string, string];
}

export interface AuditActor {
  principalId: string | null;
  principalType: 'user' | 'service_account' | 'system' | null;
}

export interface AuditEvent {
  action: string;
  actor?: AuditActor;
  target?: { type: string; id: string };
  tenantId?: string | null;
  /** what changed; never secrets, hashes or tokens */
  changes?: Record<string, unknown>;
}

/**
 * The one place security events and admin mutations are recorded. `record` runs inside the
 * caller's transaction, so a change and its record commit or roll back together.
 */
@Injectable()
export class AuditService {
  private readonly appendListeners: Array<() => void> = [];

  constructor(
    private readonly records: AuditRepository,
    @Optional() @Inject(APP_CONFIG) private readonly config?: Pick<AppConfig, 'BENCH_AUDIT_PLAIN_INSERT'>,
  ) {}

  /**
   * `listener` hears of each append. It runs inside the caller's transaction, which may still
   * roll back, so it must only schedule work (the JetStream publisher reads committed records).
   */
  onAppend(listener: () => void): void {
    this.appendListeners.push(listener);
  }

  /**
   * Records `event` in the caller's transaction (outside one, in its own statement). The record
   * is inserted into audit_pending and chained while that transaction commits: a deferred
   * trigger calls audit_append(), which takes the chain lock and assigns seq, `at` and the hash,
   * so the lock is held for the commit only, wherever in the transaction the record was written.
   */
  async record(tx: Prisma.TransactionClient, event: AuditEvent): Promise<{ id: string }> {
    const { content, parts } = this.prepare(event);
    if (this.config?.BENCH_AUDIT_PLAIN_INSERT === true) await this.records.appendPlain(tx, content);
    else await this.records.appendPending(tx, content, parts);
    this.appended();
    return { id: content.id };
  }

  /**
   * The record `event` becomes, and its canonical JSON in pieces, for a caller that queues it
   * inside its own SQL function (session_start() inserts it into audit_pending); then call `appended`.
   */
  prepare(event: AuditEvent): PreparedAuditRecord {
    const context = requestContext.get();
    // hashed exactly as stored: JSON drops undefined and turns Dates into strings, so hash the JSON form
    const changes = event.changes === undefined ? null : (JSON.parse(JSON.stringify(event.changes)) as Record<string, unknown>);
    const actor = event.actor ?? {
      principalId: context?.principalId ?? null,
      principalType: context?.principalType ?? null,
    };
    const content: AuditContent = {
      id: randomUUID(),
      actor: {
        principal_id: actor.principalId,
        principal_type: actor.principalType,
        ip: context?.clientIp ?? null,
        user_agent: context?.userAgent ?? null,
      },
      action: event.action,
      target: { type: event.target?.type ?? null, id: event.target?.id ?? null },
      tenant_id: event.tenantId ?? context?.tenantId ?? null,
      request_id: context?.requestId ?? null,
      correlation_id: context?.correlationId ?? null,
      // covered by the hash when present (docs/decisions.md "trace_id in audit records")
      trace_id: context?.traceId,
      changes,
    };
    return { content, parts: chainParts(content) };
  }

  /**
   * A prepared record was queued (listeners only schedule work: the transaction may still roll
   * back, and seq is assigned at its commit).
   */
  appended(): void {
    for (const listener of this.appendListeners) listener();
  }
}
