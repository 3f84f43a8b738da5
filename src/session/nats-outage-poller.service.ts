import { randomUUID } from 'node:crypto';
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';
import { AuditRepository } from '../audit/audit.repository';
import { requestContext } from '../common/request-context';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { PrismaService } from '../database/prisma.service';
import { ClusterEventBus } from '../messaging/cluster-event-bus';
import { NatsConnectionService } from '../messaging/nats-connection.service';
import { ServiceAccountRepository } from '../identity/service-account.repository';
import { UserRepository } from '../identity/user.repository';
import { LOGGER } from '../observability/logger';
import { RevocationService } from './revocation.service';
import { SessionRepository } from './session.repository';

/** How often the database is read while NATS is unreachable (CONTRACT §8: revocation within 1 s). */
export const OUTAGE_POLL_MS = 400;
/**
 * How far before the disconnect was noticed the first read looks back: events sent just before
 * it may have gone down with the connection (a silent one is noticed after two missed pings).
 */
const LOOKBACK_MS = 15_000;
/** Clock skew between replicas, on top of a transaction's commit coming up to DB_TIMEOUT_MS after its timestamps. */
const SKEW_MS = 2000;
const BATCH = 500;

/** Audit actions after which a principal's status (active, disabled, deleted) may have changed: its status is read again. */
function mayChangeStatus(action: string): boolean {
  return action.startsWith('iam.user.') || action.startsWith('iam.service_account.');
}
const PRINCIPAL_TARGETS = new Set(['user', 'service_account', 'principal']);

function changesAuthorization(action: string): boolean {
  return action.startsWith('iam.') || action.startsWith('platform.tenant.') || action.startsWith('platform.right.');
}

/**
 * While NATS is unreachable, cluster events do not arrive; this replica then learns the same
 * changes from PostgreSQL, every OUTAGE_POLL_MS, and runs its own handlers for them as if the
 * event had come (`ClusterEventBus.deliverLocally`):
 *  - sessions revoked since the last read (`sessions.revoked_at`, read with an overlap of
 *    DB_TIMEOUT_MS + clock skew, since a revocation commits after its timestamp) → `session.revoked`;
 *  - the audit trail after the last seq seen (commit order, so nothing is skipped): every
 *    authorization mutation is audited → `authz.changed`, a user or service account changed
 *    (disabled, enabled, deleted, ...) → its status read again → `principal.status_changed`, a key rotation → `keys.changed`.
 * Sign-out is not audited, hence the sessions read. Once NATS is back, events flow again and
 * the caches resynchronize on the reconnect as before; polling stops.
 */
@Injectable()
export class NatsOutagePoller implements OnApplicationBootstrap, OnApplicationShutdown {
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private sessionsSince = new Date(0);
  private auditPosition: { afterSeq: bigint } | { since: Date } = { since: new Date(0) };
  private failing = false;
  private readonly logger: Logger;

  constructor(
    private readonly prisma: PrismaService,
    private readonly sessions: SessionRepository,
    private readonly users: UserRepository,
    private readonly serviceAccounts: ServiceAccountRepository,
    private readonly audit: AuditRepository,
    private readonly revocations: RevocationService,
    private readonly events: ClusterEventBus,
    private readonly nats: NatsConnectionService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ task: 'nats-outage-poller' });
  }

  onApplicationBootstrap(): void {
    if (!this.nats.enabled) return;
    this.nats.onDisconnect(() => this.begin());
    this.nats.onReconnect(() => this.end());
    if (!this.nats.isConnected) this.begin();
  }

  onApplicationShutdown(): Promise<void> | undefined {
    clearInterval(this.timer);
    this.timer = undefined;
    return this.polling;
  }

  get active(): boolean {
    return this.timer !== undefined;
  }

  private begin(): void {
    if (this.timer !== undefined) return;
    const from = new Date(Date.now() - LOOKBACK_MS);
    this.sessionsSince = from;
    this.auditPosition = { since: from };
    this.failing = false;
    this.logger.warn({ every_ms: OUTAGE_POLL_MS }, 'NATS unreachable: reading revocations and authorization changes from the database');
    this.timer = requestContext.outside(() => setInterval(() => void this.poll(), OUTAGE_POLL_MS));
    this.timer.unref();
    void this.poll();
  }

  private end(): void {
    if (this.timer === undefined) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.logger.info('NATS reachable again: events carry changes; stopped reading them from the database');
  }

  /** One read; never two at once (a slow database skips ticks rather than piling reads up). */
  poll(): Promise<void> {
    this.polling ??= requestContext
      .outside(() => this.readChanges())
      .finally(() => {
        this.polling = undefined;
      });
    return this.polling;
  }

  private async readChanges(): Promise<void> {
    const logger = this.logger.child({ task_id: randomUUID() });
    const startedAt = Date.now();
    try {
      await this.readRevokedSessions(startedAt);
      await this.readAuditTrail();
      if (this.failing) logger.info('reading changes from the database again');
      this.failing = false;
    } catch (error) {
      if (!this.failing) logger.warn({ err: error }, 'cannot read changes from the database while NATS is unreachable; retrying');
      this.failing = true;
    }
  }

  private async readRevokedSessions(startedAt: number): Promise<void> {
    const revoked = await this.sessions.revokedSince(this.prisma, this.sessionsSince);
    const news = revoked.filter((session) => !this.revocations.isSessionRevoked(session.id)).map((session) => session.id);
    if (news.length > 0) await this.events.deliverLocally('session.revoked', { sessionIds: news });
    const overlap = this.config.DB_TIMEOUT_MS + SKEW_MS;
    this.sessionsSince = new Date(Math.max(this.sessionsSince.getTime(), startedAt - overlap));
  }

  private async readAuditTrail(): Promise<void> {
    for (;;) {
      const changes = await this.audit.changesAfter(this.prisma, this.auditPosition, BATCH);
      if (changes.length === 0) return;
      this.auditPosition = { afterSeq: changes.at(-1)!.seq };
      const statusTargets = new Set<string>();
      const authzTargets = new Set<string>();
      let authzAll = false;
      let keys = false;
      for (const change of changes) {
        const principal = change.targetId !== null && change.targetType !== null && PRINCIPAL_TARGETS.has(change.targetType);
        if (mayChangeStatus(change.action) && principal) statusTargets.add(change.targetId!);
        if (changesAuthorization(change.action)) {
          if (principal) authzTargets.add(change.targetId!);
          else authzAll = true;
        }
        if (change.action === 'platform.keys.rotate') keys = true;
      }
      for (const principalId of statusTargets) {
        const active = await this.isActive(principalId);
        if (active === this.revocations.isPrincipalInactive(principalId)) {
          await this.events.deliverLocally('principal.status_changed', { principalId, active });
        }
      }
      if (authzAll) await this.events.deliverLocally('authz.changed', {});
      else if (authzTargets.size > 0) await this.events.deliverLocally('authz.changed', { principalIds: [...authzTargets] });
      if (keys) await this.events.deliverLocally('keys.changed', {});
      if (changes.length < BATCH) return;
    }
  }

  /** A user that exists and is active, or a service account that exists (deleted = inactive). */
  private async isActive(principalId: string): Promise<boolean> {
    const user = await this.users.findById(this.prisma, principalId);
    if (user !== null) return user.status === 'active';
    return (await this.serviceAccounts.findById(this.prisma, principalId)) !== null;
  }
}
