import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';
import { RequestAuthorizer } from '../authz/request-authorizer.service';
import { AppError } from '../common/app-error';
import { ClusterEventBus } from '../messaging/cluster-event-bus';
import { LOGGER } from '../observability/logger';
import { MetricsService } from '../observability/metrics.service';
import { RoutingService } from '../routing/routing.service';
import { RevocationService } from '../session/revocation.service';
import { SUBSCRIBE_DECLARATION } from './subscription-handshake';

/** WebSocket close codes (RFC 6455 §7.4.1). */
export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_POLICY_VIOLATION = 1008;
/** "Service restart": the tenant moved to another shard; the client reconnects and lands there. */
export const CLOSE_SERVICE_RESTART = 1012;

/** Safety net besides the cluster events: revocations learnt by a resync after a NATS outage. */
const SWEEP_INTERVAL_MS = 5_000;

export interface LiveSubscription {
  principalId: string;
  sessionId: string | undefined;
  /** kept to re-run the decision when authorization changes */
  authorization: string;
  tenantId: string;
  /** the projection shard the upstream socket went to */
  shardId?: string;
  viewType: string;
  /** closes both sides; the reason goes to the client */
  close(code: number, reason: string): void;
  /** `listener` runs once both sockets are closed (at once if they are) */
  onGone(listener: () => void): void;
  /** drops both sockets without a close handshake */
  destroy(): void;
}

/**
 * Every open subscription of this replica, and the reasons to end them: the session revoked,
 * the principal disabled, the right withdrawn (re-decided on `authz.changed`), on any replica
 * within a second through the cluster events (1008); the tenant's placement moving to another
 * shard, seen by every replica through the routing watch (1012); shutdown (1001).
 */
@Injectable()
export class SubscriptionRegistry implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly live = new Set<LiveSubscription>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly events: ClusterEventBus,
    private readonly revocations: RevocationService,
    private readonly authorizer: RequestAuthorizer,
    private readonly metrics: MetricsService,
    private readonly routing: RoutingService,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** Registered after every module's own handlers, so a re-decision sees their updated state. */
  onApplicationBootstrap(): void {
    this.events.on('session.revoked', ({ sessionIds }) => {
      const revoked = new Set(sessionIds);
      this.closeWhere((entry) => entry.sessionId !== undefined && revoked.has(entry.sessionId), 'session revoked');
    });
    this.events.on('principal.status_changed', ({ principalId, active }) => {
      if (!active) this.closeWhere((entry) => entry.principalId === principalId, 'principal disabled');
    });
    this.events.on('authz.changed', ({ principalIds }) => this.redecide(principalIds));
    this.routing.onChange((snapshot) => {
      if (snapshot.kind === 'projection') this.closeMoved();
    });
    this.timer = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  get size(): number {
    return this.live.size;
  }

  add(entry: LiveSubscription): void {
    this.live.add(entry);
    this.metrics.wsConnections.inc();
  }

  remove(entry: LiveSubscription): void {
    if (this.live.delete(entry)) this.metrics.wsConnections.dec();
  }

  /** Shutdown: 1001 to every client, then wait (bounded) for the sockets to go. */
  async closeAll(timeoutMs: number): Promise<void> {
    const entries = [...this.live];
    const closed = entries.map((entry) => new Promise<void>((resolve) => entry.onGone(resolve)));
    for (const entry of entries) entry.close(CLOSE_GOING_AWAY, 'server shutting down');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(closed), new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
    for (const entry of entries) entry.destroy();
  }

  private closeWhere(predicate: (entry: LiveSubscription) => boolean, reason: string): void {
    for (const entry of [...this.live]) {
      if (!predicate(entry)) continue;
      this.logger.info({ principal_id: entry.principalId, tenant_id: entry.tenantId, reason }, 'subscription closed by policy');
      entry.close(CLOSE_POLICY_VIOLATION, reason);
    }
  }

  /** Subscriptions whose tenant now resolves to another shard (or none); in-flight HTTP is left alone. */
  private closeMoved(): void {
    for (const entry of [...this.live]) {
      if (entry.shardId === undefined) continue;
      const now = this.routing.peek('projection', entry.tenantId);
      if (now?.shardId === entry.shardId) continue;
      this.logger.info(
        { principal_id: entry.principalId, tenant_id: entry.tenantId, from_shard: entry.shardId, to_shard: now?.shardId ?? null },
        'subscription closed: tenant moved to another shard',
      );
      entry.close(CLOSE_SERVICE_RESTART, 'tenant moved to another shard');
    }
  }

  private async redecide(principalIds: string[] | undefined): Promise<void> {
    const affected = principalIds === undefined ? undefined : new Set(principalIds);
    for (const entry of [...this.live]) {
      if (affected !== undefined && !affected.has(entry.principalId)) continue;
      try {
        await this.authorizer.authorize({
          declaration: SUBSCRIBE_DECLARATION,
          authorization: entry.authorization,
          tenantHeader: entry.tenantId,
          resource: entry.viewType,
          // the policy hook is asked once, at the handshake (CONTRACT §13); this re-runs RBAC only
          policy: 'asked-at-handshake',
        });
      } catch (error) {
        const reason = error instanceof AppError ? error.code : 'authorization failed';
        this.logger.info({ principal_id: entry.principalId, tenant_id: entry.tenantId, reason }, 'subscription closed by policy');
        entry.close(
          CLOSE_POLICY_VIOLATION,
          reason === 'forbidden' || reason === 'tenant_forbidden' ? 'right withdrawn' : 'token no longer valid',
        );
      }
    }
  }

  private sweep(): void {
    this.closeWhere(
      (entry) =>
        (entry.sessionId !== undefined && this.revocations.isSessionRevoked(entry.sessionId)) ||
        this.revocations.isPrincipalInactive(entry.principalId),
      'session revoked',
    );
  }
}
