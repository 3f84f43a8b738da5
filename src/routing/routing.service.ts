import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { KV, KvEntry } from '@nats-io/kv';
import type { Logger } from 'pino';
import { Counter, Gauge } from 'prom-client';
import { AppError } from '../common/app-error';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { ClusterEventBus } from '../messaging/cluster-event-bus';
import { NatsConnectionService } from '../messaging/nats-connection.service';
import { LOGGER } from '../observability/logger';
import { MetricsService } from '../observability/metrics.service';
import { ReadinessService } from '../observability/readiness.service';
import { FORWARD_RULES_KEY } from './forward-rules-document';
import { ForwardRulesTable, type ForwardOfferResult, type ForwardRulesRejection, type ForwardRulesSnapshot } from './forward-rules-table';
import { ROUTING_PARTS, SERVICE_KINDS, parsePartKey, partKey, type RoutingDocument, type ServiceKind } from './routing-document';
import { openRoutingBucket, readParts, readRoutingFile, seedBucket } from './routing-sources';
import { KvRoutingStore, MemoryRoutingStore, type RoutingStore } from './routing-store';
import { RoutingTable, type KindSnapshot, type OfferResult, type Rejection, type ResolvedShard } from './routing-table';

export type RoutingSource = 'kv' | 'file' | 'none';

const WATCH_RESTART_MS = 1000;

/**
 * Keeps this replica's routing tables: from the JetStream KV bucket (watched, so a write is
 * in force within a second on every replica) or, in single-node mode, from ROUTING_FILE.
 * Every change is validated; a refused one is logged and counted and the last good table stays.
 */
@Injectable()
export class RoutingService implements OnModuleInit, OnApplicationShutdown {
  private readonly table = new RoutingTable();
  private readonly forward = new ForwardRulesTable();
  private readonly seen = new Map<string, number>();
  private readonly listeners: Array<(snapshot: KindSnapshot) => void> = [];
  private readonly revisionGauge: Gauge<'service_kind' | 'part'>;
  private readonly rejectedCounter: Counter<'service_kind'>;
  private kv: KV | undefined;
  // single-node mode: the file's tables plus API writes, until the next reload of the file
  private readonly memory = new MemoryRoutingStore();
  private kvStore: RoutingStore | undefined;
  private stopped = false;
  private watchStop: (() => void) | undefined;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly nats: NatsConnectionService,
    private readonly events: ClusterEventBus,
    private readonly metrics: MetricsService,
    readiness: ReadinessService,
  ) {
    readiness.register('routing', () => this.table.isLoaded);
    this.revisionGauge = new Gauge({
      name: 'gatehouse_routing_revision',
      help: 'Revision of the routing part in force (KV revision, or file load count)',
      labelNames: ['service_kind', 'part'] as const,
      registers: [metrics.registry],
      // every process of a replica holds the same table
      aggregator: 'max',
    });
    this.rejectedCounter = new Counter({
      name: 'gatehouse_routing_rejected_total',
      help: 'Routing changes refused by validation (the last good table stayed)',
      labelNames: ['service_kind'] as const,
      registers: [metrics.registry],
    });
  }

  get source(): RoutingSource {
    if (this.nats.nc !== undefined) return 'kv';
    return this.config.ROUTING_FILE !== undefined ? 'file' : 'none';
  }

  async onModuleInit(): Promise<void> {
    for (const kind of SERVICE_KINDS) for (const part of ROUTING_PARTS) this.revisionGauge.set({ service_kind: kind, part }, 0);
    this.revisionGauge.set({ service_kind: 'forward', part: 'rules' }, 0);
    this.events.on('routing.changed', () => this.reloadQuietly());
    switch (this.source) {
      case 'kv':
        await this.startKv();
        break;
      case 'file': {
        // A bad ROUTING_FILE at start is bad configuration: the replica does not start.
        const document = await readRoutingFile(this.config.ROUTING_FILE!).catch((error: unknown) => {
          throw new Error(`routing: ROUTING_FILE: ${error instanceof Error ? error.message : String(error)}`);
        });
        this.loadDocument(document);
        break;
      }
      case 'none':
        this.logger.warn('no NATS_URL and no ROUTING_FILE: every tenant is unrouted');
        break;
    }
    this.table.markLoaded();
  }

  onApplicationShutdown(): void {
    this.stopped = true;
    this.watchStop?.();
  }

  /** Where routing writes go: the KV bucket, or this replica's memory in single-node mode. */
  get store(): RoutingStore {
    return this.kvStore ?? this.memory;
  }

  /**
   * Puts a value this replica just wrote to the store in force here at once (the KV watch
   * brings the same revision later and skips it; other replicas learn from their watch).
   */
  applyWritten(key: string, value: string, revision: number): void {
    this.offerRaw(key, value, revision);
  }

  /** Called when a kind's table changed (e.g. to close channels to removed endpoints). */
  onChange(listener: (snapshot: KindSnapshot) => void): void {
    this.listeners.push(listener);
  }

  /** The tenant's shard, or 404 tenant_not_routed (counted). */
  resolve(kind: ServiceKind, tenantId: string | undefined): ResolvedShard {
    const resolved = this.table.resolve(kind, tenantId);
    if (resolved === undefined) {
      this.metrics.routingMisses.inc();
      throw new AppError('tenant_not_routed', { logReason: `no ${kind} placement for ${tenantId ?? '*'} and no default` });
    }
    return resolved;
  }

  /** Same lookup without counting a miss (admin resolve endpoint). */
  peek(kind: ServiceKind, tenantId: string | undefined): ResolvedShard | undefined {
    return this.table.resolve(kind, tenantId);
  }

  snapshot(kind: ServiceKind): KindSnapshot {
    return this.table.snapshot(kind);
  }

  lastRejection(kind: ServiceKind): Rejection | undefined {
    return this.table.lastRejection(kind);
  }

  /** The forward-auth rules in force (CONTRACT §10). */
  forwardRules(): ForwardRulesSnapshot {
    return this.forward.snapshot();
  }

  lastForwardRejection(): ForwardRulesRejection | undefined {
    return this.forward.lastRejection();
  }

  get isLoaded(): boolean {
    return this.table.isLoaded;
  }

  /** Re-reads the source on this replica and tells the others to do the same. */
  async reloadEverywhere(): Promise<void> {
    await this.events.publish('routing.changed', {});
  }

  /** Re-reads the whole source. A refused file or part leaves the last good table. */
  async reload(): Promise<void> {
    if (this.kv !== undefined) {
      const entries = await readParts(this.kv);
      // an explicit reload re-applies even when the revisions were already seen
      this.seen.clear();
      this.offerEntries(entries);
      return;
    }
    if (this.config.ROUTING_FILE !== undefined && this.nats.nc === undefined) {
      let document: RoutingDocument;
      try {
        document = await readRoutingFile(this.config.ROUTING_FILE);
      } catch (error) {
        const revision = this.memory.nextRevision();
        this.record(SERVICE_KINDS.map((kind) => this.table.reject(kind, 'document', revision, error)));
        this.recordForward(this.forward.reject(revision, error));
        return;
      }
      this.loadDocument(document);
    }
  }

  /** Single-node mode: the file replaces every part, including changes made through the API. */
  private loadDocument(document: RoutingDocument): void {
    const revision = this.memory.nextRevision();
    const results = this.table.offerDocument(document, revision);
    for (const result of results) {
      if (!result.applied) continue;
      const { kind, table } = result.snapshot;
      for (const part of ROUTING_PARTS) this.memory.set(partKey(kind, part), JSON.stringify(table[part]), revision);
    }
    this.record(results);
    const rules = document.forward?.rules ?? [];
    this.memory.set(FORWARD_RULES_KEY, JSON.stringify(rules), revision);
    this.recordForward(this.forward.offerRules(rules, revision));
  }

  private async reloadQuietly(): Promise<void> {
    try {
      await this.reload();
    } catch (error) {
      this.logger.error({ err: error }, 'routing reload failed; the last good tables stay');
    }
  }

  private async startKv(): Promise<void> {
    const kv = await openRoutingBucket(this.nats.nc!, this.config.ROUTING_KV_BUCKET);
    this.kv = kv;
    this.kvStore = new KvRoutingStore(kv);
    if (this.config.ROUTING_FILE !== undefined) {
      const document = await readRoutingFile(this.config.ROUTING_FILE).catch((error: unknown) => {
        throw new Error(`routing: ROUTING_FILE: ${error instanceof Error ? error.message : String(error)}`);
      });
      const written = await seedBucket(kv, document);
      if (written > 0) {
        this.logger.info({ bucket: this.config.ROUTING_KV_BUCKET, keys: written }, 'seeded the routing bucket from ROUTING_FILE');
      }
    }
    this.offerEntries(await readParts(kv));
    void this.watch(kv);
    // Changes made while disconnected are caught up by a full re-read.
    this.nats.onReconnect(() => void this.reloadQuietly());
  }

  private async watch(kv: KV): Promise<void> {
    while (!this.stopped) {
      try {
        const iterator = await kv.watch();
        this.watchStop = () => iterator.stop();
        for await (const entry of iterator) this.offerEntry(entry.key, entry);
      } catch (error) {
        if (this.stopped) return;
        this.logger.warn({ err: error }, 'routing watch interrupted; restarting');
      }
      if (this.stopped) return;
      await new Promise((resolve) => setTimeout(resolve, WATCH_RESTART_MS).unref());
    }
  }

  /**
   * Every part read at one moment (start-up, reload): each kind's placement and shards go in
   * together as one document, so a placement is never judged against shards not yet offered.
   */
  private offerEntries(entries: Map<string, KvEntry | null>): void {
    const fresh = new Map<string, { raw: string | Uint8Array | null; revision: number }>();
    for (const [key, entry] of entries) {
      const revision = entry?.revision ?? 0;
      if (revision !== 0 && (this.seen.get(key) ?? -1) >= revision) continue;
      fresh.set(key, { raw: entry === null || entry.operation !== 'PUT' ? null : entry.value, revision });
    }
    for (const kind of SERVICE_KINDS) {
      const placement = fresh.get(partKey(kind, 'placement'));
      const shards = fresh.get(partKey(kind, 'shards'));
      if (placement === undefined || shards === undefined) continue;
      fresh.delete(partKey(kind, 'placement'));
      fresh.delete(partKey(kind, 'shards'));
      this.seen.set(partKey(kind, 'placement'), placement.revision);
      this.seen.set(partKey(kind, 'shards'), shards.revision);
      this.record(this.table.offerParts(kind, placement, shards));
    }
    // a kind with one changed part, and the forward rules, go the single-key way
    for (const [key, { raw, revision }] of fresh) this.offerRaw(key, raw, revision);
  }

  private offerEntry(key: string, entry: KvEntry | null): void {
    const revision = entry?.revision ?? 0;
    const raw = entry === null || entry.operation !== 'PUT' ? null : entry.value;
    this.offerRaw(key, raw, revision);
  }

  private offerRaw(key: string, raw: string | Uint8Array | null, revision: number): void {
    const parsed = parsePartKey(key);
    if (parsed === undefined && key !== FORWARD_RULES_KEY) {
      if (raw !== null) this.logger.warn({ key }, 'ignored unknown key in the routing bucket');
      return;
    }
    if (revision !== 0 && (this.seen.get(key) ?? -1) >= revision) return;
    this.seen.set(key, revision);
    if (parsed === undefined) this.recordForward(this.forward.offerRaw(raw, revision));
    else this.record([this.table.offerPart(parsed.kind, parsed.part, raw, revision)]);
  }

  private recordForward(result: ForwardOfferResult): void {
    if (result.applied) {
      this.revisionGauge.set({ service_kind: 'forward', part: 'rules' }, result.snapshot.revision);
      this.logger.info(
        { service_kind: 'forward', revision: result.snapshot.revision, rules: result.snapshot.rules.length },
        'forward rules applied',
      );
    } else {
      this.rejectedCounter.inc({ service_kind: 'forward' });
      this.logger.warn(
        { service_kind: 'forward', revision: result.rejection.revision, problems: result.rejection.problems },
        'forward rules rejected; the last good list stays',
      );
    }
  }

  private record(results: OfferResult[]): void {
    for (const result of results) {
      if (result.applied) {
        const { snapshot } = result;
        this.revisionGauge.set({ service_kind: snapshot.kind, part: 'placement' }, snapshot.revisions.placement);
        this.revisionGauge.set({ service_kind: snapshot.kind, part: 'shards' }, snapshot.revisions.shards);
        this.logger.info({ service_kind: snapshot.kind, revisions: snapshot.revisions, source: this.source }, 'routing table applied');
        for (const listener of this.listeners) listener(snapshot);
      } else {
        const { rejection } = result;
        this.rejectedCounter.inc({ service_kind: rejection.kind });
        this.logger.warn(
          { service_kind: rejection.kind, part: rejection.part, revision: rejection.revision, problems: rejection.problems },
          'routing change rejected; the last good table stays',
        );
      }
    }
  }
}
