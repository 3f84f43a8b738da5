import { Injectable, type OnModuleInit } from '@nestjs/common';
import { mapIn } from '../common/nested-map';
import { PrismaService } from '../database/prisma.service';
import { ClusterEventBus } from '../messaging/cluster-event-bus';
import { NatsConnectionService } from '../messaging/nats-connection.service';
import { AssignmentRepository } from './assignment.repository';
import { decide, type Decision, type GrantSource } from './decision-engine';

/** Safety net only: events keep entries exact; this bounds the damage of a lost one. */
const ENTRY_TTL_MS = 60_000;
/** Decisions remembered per principal (the resource is the client's): beyond this the map starts over. */
const DECISIONS_PER_PRINCIPAL = 256;

interface Entry {
  sources: GrantSource[];
  loadedAt: number;
  /**
   * decisions already taken from these sources, by right, tenant ('' for none) and resource
   * (undefined for none): nested maps, not one key string built per request, which the map
   * flattened and hashed on every lookup (the right is a constant, tenant and resource a few
   * characters each)
   */
  decisions: Map<string, Map<string, Map<string | undefined, Decision>>>;
  /** how many decisions `decisions` holds */
  decisionCount: number;
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
    return (await this.entry(principalId)).sources;
  }

  /**
   * The decision for one request. A decision is a pure function of the principal's grant
   * sources, so it is kept with them and dropped with them (same events, same TTL): the
   * proxied path then costs two map lookups instead of a walk over every grant.
   */
  async decide(principalId: string, tenantId: string | undefined, right: string, resource: string | undefined): Promise<Decision> {
    return this.decideFrom(await this.entry(principalId), principalId, tenantId, right, resource);
  }

  /**
   * The same decision without waiting when the principal's grant sources are in memory (the
   * proxied fast path); undefined when they must be loaded first (then `decide`).
   */
  decideNow(principalId: string, tenantId: string | undefined, right: string, resource: string | undefined): Decision | undefined {
    const entry = this.liveEntry(principalId);
    return entry === undefined ? undefined : this.decideFrom(entry, principalId, tenantId, right, resource);
  }

  private decideFrom(
    entry: Entry,
    principalId: string,
    tenantId: string | undefined,
    right: string,
    resource: string | undefined,
  ): Decision {
    const decided = entry.decisions
      .get(right)
      ?.get(tenantId ?? '')
      ?.get(resource);
    if (decided !== undefined) return decided;
    const decision = decide({ principalId, tenantId, right, resource, assignments: entry.sources });
    if (entry.decisionCount >= DECISIONS_PER_PRINCIPAL) {
      entry.decisions.clear();
      entry.decisionCount = 0;
    }
    mapIn(mapIn(entry.decisions, right), tenantId ?? '').set(resource, decision);
    entry.decisionCount += 1;
    return decision;
  }

  private liveEntry(principalId: string): Entry | undefined {
    const cached = this.entries.get(principalId);
    return cached !== undefined && Date.now() - cached.loadedAt < ENTRY_TTL_MS ? cached : undefined;
  }

  private async entry(principalId: string): Promise<Entry> {
    const cached = this.liveEntry(principalId);
    if (cached !== undefined) return cached;
    const generation = this.generation;
    const sources = await this.assignments.grantSourcesOf(this.prisma, principalId);
    const loaded: Entry = { sources, loadedAt: Date.now(), decisions: new Map(), decisionCount: 0 };
    if (generation === this.generation) this.entries.set(principalId, loaded);
    return loaded;
  }

  invalidate(principalIds?: string[]): void {
    this.generation += 1;
    if (principalIds === undefined) this.entries.clear();
    else for (const id of principalIds) this.entries.delete(id);
  }
}
