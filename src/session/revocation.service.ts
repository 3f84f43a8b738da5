import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { Logger } from 'pino';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { PrismaService } from '../database/prisma.service';
import { ClusterEventBus } from '../messaging/cluster-event-bus';
import { NatsConnectionService } from '../messaging/nats-connection.service';
import { DeletedPrincipalRepository } from '../identity/deleted-principal.repository';
import { UserRepository } from '../identity/user.repository';
import { LOGGER } from '../observability/logger';
import { SessionRepository } from './session.repository';
import { CLOCK_TOLERANCE_S } from './signing-key.service';

const PRUNE_INTERVAL_MS = 60_000;

/**
 * Per-replica knowledge of revoked sessions and inactive principals, so verifying a token
 * needs no database read. Kept exact by cluster events; rebuilt from the database at boot
 * and after every NATS reconnect (events sent while disconnected are lost).
 * A revoked session is remembered as long as one of its access tokens could still be valid.
 */
@Injectable()
export class RevocationService implements OnModuleInit, OnApplicationShutdown {
  private revokedSessions = new Map<string, number>();
  private inactivePrincipals = new Set<string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly prisma: PrismaService,
    private readonly sessions: SessionRepository,
    private readonly users: UserRepository,
    private readonly deletedPrincipals: DeletedPrincipalRepository,
    private readonly events: ClusterEventBus,
    nats: NatsConnectionService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    nats.onReconnect(() => void this.resync().catch(() => undefined));
  }

  async onModuleInit(): Promise<void> {
    this.events.on('session.revoked', ({ sessionIds }) => this.markSessionsRevoked(sessionIds));
    this.events.on('principal.status_changed', ({ principalId, active }) => {
      if (active) this.inactivePrincipals.delete(principalId);
      else this.inactivePrincipals.add(principalId);
    });
    await this.resync();
    this.timer = setInterval(() => this.prune(), PRUNE_INTERVAL_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  isSessionRevoked(sessionId: string): boolean {
    return this.revokedSessions.has(sessionId);
  }

  isPrincipalInactive(principalId: string): boolean {
    return this.inactivePrincipals.has(principalId);
  }

  markSessionsRevoked(sessionIds: string[]): void {
    const keepUntil = Date.now() + this.rememberMs();
    for (const id of sessionIds) this.revokedSessions.set(id, keepUntil);
  }

  /** Rebuilds both sets from the database. */
  async resync(): Promise<void> {
    try {
      const since = new Date(Date.now() - this.rememberMs());
      const [sessions, users, deleted] = await Promise.all([
        this.sessions.revokedSince(this.prisma, since),
        this.users.inactiveIds(this.prisma),
        this.deletedPrincipals.deletedSince(this.prisma, since),
      ]);
      const revoked = new Map<string, number>();
      for (const session of sessions) revoked.set(session.id, session.revokedAt.getTime() + this.rememberMs());
      // events that arrived during the reload stay
      for (const [id, until] of this.revokedSessions) if (!revoked.has(id)) revoked.set(id, until);
      this.revokedSessions = revoked;
      this.inactivePrincipals = new Set([...users, ...deleted]);
    } catch (error) {
      this.logger.error({ err: error }, 'revocation resync failed');
      throw error;
    }
  }

  private rememberMs(): number {
    return (this.config.ACCESS_TOKEN_TTL + CLOCK_TOLERANCE_S + 5) * 1000;
  }

  private prune(): void {
    const now = Date.now();
    for (const [id, until] of this.revokedSessions) if (until < now) this.revokedSessions.delete(id);
  }
}
