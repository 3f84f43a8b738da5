import { Injectable, type OnModuleInit } from '@nestjs/common';
import { PrismaService } from '../database/prisma.service';
import { ClusterEventBus } from '../messaging/cluster-event-bus';
import { NatsConnectionService } from '../messaging/nats-connection.service';
import { AssignmentRepository } from './assignment.repository';
import type { GrantSource } from './decision-engine';

/** Safety net only: events keep entries exact; this bounds the damage of a lost one. */
const ENTRY_TTL_MS = 60_000;

interface Entry {
  sources: GrantSource[];
  loadedAt: number;
}

/**
 * Per-replica cache of each principal's assignments, so deciding needs no database read
 * per request. No stale allow survives a change:
 *  - every authorization mutation publishes `authz.changed` after commit; every replica drops
 *    the affected entries (or all) when it hears it, the publishing one before it answers;
 *  - a load that was in flight when an invalidation arrived is not cached (generation check),
 *    so an old read cannot overwrite a newer invalidation;
 *  - after a NATS reconnect (events may have been missed) the whole cache is dropped.
 */
@Injectable()
export class AuthorizationCache implements OnModuleInit {
  private readonly entries = new Map<string, Entry>();
  private generation = 0;

  constructor(
    private readonly prisma: PrismaService,
    private readonly assignments: AssignmentRepository,
    private readonly events: ClusterEventBus,
    nats: NatsConnectionService,
  ) {
    nats.onReconnect(() => this.invalidate());
  }

  onModuleInit(): void {
    this.events.on('authz.changed', ({ principalIds }) => this.invalidate(principalIds));
  }

  async grantSourcesOf(principalId: string): Promise<GrantSource[]> {
    const cached = this.entries.get(principalId);
    if (cached !== undefined && Date.now() - cached.loadedAt < ENTRY_TTL_MS) return cached.sources;
    const generation = this.generation;
    const sources = await this.assignments.grantSourcesOf(this.prisma, principalId);
    if (generation === this.generation) this.entries.set(principalId, { sources, loadedAt: Date.now() });
    return sources;
  }

  invalidate(principalIds?: string[]): void {
    this.generation += 1;
    if (principalIds === undefined) this.entries.clear();
    else for (const id of principalIds) this.entries.delete(id);
  }
}
