import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { AuditService } from '../audit/audit.service';
import { AppError } from '../common/app-error';
import { firstHeader } from '../common/header-value';
import { PrismaService } from '../database/prisma.service';
import { LOGGER } from '../observability/logger';
import { RoutingValidationError } from './routing-document';
import { StaleRevisionError, type StoredValue } from './routing-store';
import { RoutingService } from './routing.service';

/** Attempts of a read-modify-write before giving up while other writers keep winning. */
const MAX_ATTEMPTS = 8;

export interface RoutingWriteRequest {
  /** key in the routing source: `projection.placement`, `forward.rules`, ... */
  key: string;
  /** the raw `If-Match` header */
  ifMatch: string | string[] | undefined;
  body: unknown;
  /** Checks the body and returns the exact value to store; throws RoutingValidationError (→ 400). */
  validate(body: unknown): string;
  /** Puts the written value in force on this replica before answering (others learn from the KV watch). */
  applyLocally?(value: string, revision: number): void;
  /** audit action; `routing.write` unless said otherwise */
  auditAction?: string;
}

export interface RoutingWriteResult {
  revision: number;
  previousRevision: number;
  /** false in single-node mode: the change lives in this replica's memory only */
  persisted: boolean;
}

/** `If-Match: 42` or `If-Match: "42"` → 42; missing or anything else → 400 validation_failed. */
export function parseIfMatch(header: string | string[] | undefined): number {
  const value = firstHeader(header);
  if (value === undefined || value.trim() === '') {
    throw new AppError('validation_failed', {
      errors: [{ path: 'If-Match', message: 'is required (the revision from GET /admin/routing)' }],
    });
  }
  const match = /^\s*"?(\d{1,15})"?\s*$/.exec(value);
  if (match === null) throw new AppError('validation_failed', { errors: [{ path: 'If-Match', message: 'must be a revision number' }] });
  return Number(match[1]);
}

/** The strong ETag of a revision: `"42"`. */
export function etagOf(revision: number): string {
  return `"${revision}"`;
}

/**
 * Every write to the routing source made through the API: compare-and-set on the key's
 * revision (a stale `If-Match` is 412 `conflict`), validated before it is stored (400), audited.
 * Reusable for any key of the routing bucket: the caller brings the key and the validator.
 */
@Injectable()
export class RoutingWriteService {
  constructor(
    private readonly routing: RoutingService,
    private readonly prisma: PrismaService,
    private readonly audit: AuditService,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** An operator's write of a whole value, guarded by the revision it was based on. */
  async write(request: RoutingWriteRequest): Promise<RoutingWriteResult> {
    const expected = parseIfMatch(request.ifMatch);
    let value: string;
    try {
      value = request.validate(request.body);
    } catch (error) {
      if (error instanceof RoutingValidationError) throw new AppError('validation_failed', { errors: error.problems });
      throw error;
    }
    const store = this.routing.store;
    let revision: number;
    try {
      revision = await store.compareAndSet(request.key, value, expected);
    } catch (error) {
      if (error instanceof StaleRevisionError) {
        throw new AppError('conflict', {
          status: 412,
          detail: 'the revision in If-Match is no longer the latest; read it again',
          logReason: error.message,
        });
      }
      throw error;
    }
    request.applyLocally?.(value, revision);
    const result = { revision, previousRevision: expected, persisted: store.persisted };
    await this.recordWrite(request.auditAction ?? 'routing.write', request.key, result, JSON.parse(value) as unknown);
    return result;
  }

  /**
   * A read-modify-write of one key (e.g. one tenant's placement entry): `change` gets the
   * current value and returns the new one, or throws to refuse. When another writer wins in
   * between, it is re-read and `change` decides again, so edits of other entries never fail
   * the caller while a change to what `change` checks does.
   */
  async update(key: string, change: (current: StoredValue) => string): Promise<RoutingWriteResult & { value: string }> {
    const store = this.routing.store;
    for (let attempt = 1; ; attempt += 1) {
      const current = await store.read(key);
      const value = change(current);
      try {
        const revision = await store.compareAndSet(key, value, current.revision);
        return { revision, previousRevision: current.revision, persisted: store.persisted, value };
      } catch (error) {
        if (!(error instanceof StaleRevisionError) || attempt >= MAX_ATTEMPTS) {
          if (error instanceof StaleRevisionError) {
            throw new AppError('conflict', { logReason: `${key}: gave up after ${attempt} attempts` });
          }
          throw error;
        }
        this.logger.debug({ key, attempt }, 'routing compare-and-set lost a race; reading again');
      }
    }
  }

  private async recordWrite(action: string, key: string, result: RoutingWriteResult, value: unknown): Promise<void> {
    // The store is not PostgreSQL, so the record follows the write; a failure here is logged
    // loudly rather than hidden, as the change itself is already in force.
    try {
      await this.prisma.$transaction((tx) =>
        this.audit.record(tx, {
          action,
          target: { type: 'routing', id: key },
          tenantId: null,
          changes: { key, previous_revision: result.previousRevision, revision: result.revision, persisted: result.persisted, value },
        }),
      );
    } catch (error) {
      this.logger.error({ err: error, key, revision: result.revision }, 'routing write applied but its audit record failed');
      throw error;
    }
  }
}
