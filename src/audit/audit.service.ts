import { randomInt, randomUUID } from 'node:crypto';
import { Inject, Injectable, Optional } from '@nestjs/common';
import { requestContext } from '../common/request-context';
import { APP_CONFIG, type AppConfig } from '../config/config';
import type { Prisma } from '../generated/prisma/client';
import { GENESIS_HASH, chainHash, type ChainedContent } from './audit-chain';
import { AuditRepository } from './audit.repository';

/** pg_advisory_xact_lock key serializing chain appends, so seq is gap-free across replicas. */
const AUDIT_CHAIN_LOCK = 0x61756474;

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
  private readonly appendListeners: Array<(seq: bigint) => void> = [];

  constructor(
    private readonly records: AuditRepository,
    @Optional() @Inject(APP_CONFIG) private readonly config?: Pick<AppConfig, 'BENCH_AUDIT_PLAIN_INSERT'>,
  ) {}

  /**
   * `listener` hears of each append. It runs inside the caller's transaction, which may still
   * roll back, so it must only schedule work (the JetStream publisher reads committed records).
   */
  onAppend(listener: (seq: bigint) => void): void {
    this.appendListeners.push(listener);
  }

  async record(tx: Prisma.TransactionClient, event: AuditEvent): Promise<{ seq: bigint; id: string }> {
    const context = requestContext.get();
    const plain = this.config?.BENCH_AUDIT_PLAIN_INSERT === true;
    if (!plain) await tx.$executeRaw`SELECT pg_advisory_xact_lock(${AUDIT_CHAIN_LOCK})`;
    const last = plain ? null : await this.records.last(tx);
    // benchmark only: a negative random seq, outside the chain
    const seq = plain ? -BigInt(randomInt(1, 2 ** 47)) * 65536n - BigInt(randomInt(0, 65536)) : (last?.seq ?? 0n) + 1n;
    const at = new Date();
    // hashed exactly as stored: JSON drops undefined and turns Dates into strings, so hash the JSON form
    const changes = event.changes === undefined ? null : (JSON.parse(JSON.stringify(event.changes)) as Record<string, unknown>);
    const actor = event.actor ?? {
      principalId: context?.principalId ?? null,
      principalType: context?.principalType ?? null,
    };
    const content: ChainedContent = {
      seq: seq.toString(),
      id: randomUUID(),
      at: at.toISOString(),
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
      changes,
      prev_hash: last?.hash ?? GENESIS_HASH,
    };
    const hash = chainHash(content);
    await this.records.append(tx, {
      seq,
      id: content.id,
      at,
      actorId: content.actor.principal_id,
      actorType: content.actor.principal_type,
      actorIp: content.actor.ip,
      actorUserAgent: content.actor.user_agent,
      action: content.action,
      targetType: content.target.type,
      targetId: content.target.id,
      tenantId: content.tenant_id,
      requestId: content.request_id,
      correlationId: content.correlation_id,
      changes: (changes ?? undefined) as Prisma.InputJsonValue | undefined,
      prevHash: content.prev_hash,
      hash,
    });
    for (const listener of this.appendListeners) listener(seq);
    return { seq, id: content.id };
  }
}
