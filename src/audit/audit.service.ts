import { randomUUID } from 'node:crypto';
import { Inject, Injectable, Optional } from '@nestjs/common';
import { requestContext } from '../common/request-context';
import { APP_CONFIG, type AppConfig } from '../config/config';
import type { Prisma } from '../generated/prisma/client';
import { beforeCommit } from '../database/transaction';
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
   * Records `event` in the caller's transaction. The record is queued in audit_pending (inside
   * PrismaService.$transaction as its last statement, via beforeCommit; outside one at once) and
   * chained while that transaction commits: a deferred trigger calls audit_append(), which takes
   * the chain lock and assigns seq, `at` and the hash, so the lock is held for the commit only.
   */
  async record(tx: Prisma.TransactionClient, event: AuditEvent): Promise<{ id: string }> {
    const prepared = this.prepare(event);
    const { content } = prepared;
    const append = async (): Promise<void> => {
      if (this.config?.BENCH_AUDIT_PLAIN_INSERT === true) await this.records.appendPlain(tx, content);
      else await this.records.appendPending(tx, content, prepared.parts);
      this.appended();
    };
    if (!beforeCommit(tx, append)) await append();
    return { id: content.id };
  }

  /**
   * The record `event` becomes, and its canonical JSON in pieces, for a caller that appends it
   * inside its own SQL function (session_start() calls audit_append() itself); tell `appended` the seq.
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
   * A prepared record was appended (session_start() hands over its seq; listeners only schedule
   * work, and the transaction may still roll back).
   */
  appended(_seq?: bigint): void {
    for (const listener of this.appendListeners) listener();
  }
}
