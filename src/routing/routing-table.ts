import {
  DEFAULT_PLACEMENT,
  RoutingValidationError,
  SERVICE_KINDS,
  checkConsistency,
  emptyKindTable,
  parsePart,
  type KindTable,
  type Placement,
  type RoutingDocument,
  type RoutingPart,
  type RoutingProblem,
  type ServiceKind,
  type ShardDirectory,
} from './routing-document';

export interface PartRevisions {
  placement: number;
  shards: number;
}

/** One kind's table in force. Immutable: a change replaces the whole object, so a reader never sees half of it. */
export interface KindSnapshot {
  readonly kind: ServiceKind;
  readonly table: Readonly<KindTable>;
  readonly revisions: Readonly<PartRevisions>;
  readonly appliedAt: Date | undefined;
}

export interface Rejection {
  at: Date;
  kind: ServiceKind;
  part: RoutingPart | 'document';
  revision: number;
  problems: RoutingProblem[];
}

export interface ResolvedShard {
  kind: ServiceKind;
  shardId: string;
  endpoints: readonly string[];
  /** the placement key that matched: the tenant id or `*` */
  matched: string;
}

export type OfferResult = { applied: true; snapshot: KindSnapshot } | { applied: false; rejection: Rejection };

interface Candidate {
  placement: { value: Placement; revision: number };
  shards: { value: ShardDirectory; revision: number };
}

function freeze(kind: ServiceKind, table: KindTable, revisions: PartRevisions, appliedAt: Date | undefined): KindSnapshot {
  const shards: ShardDirectory = {};
  for (const [id, endpoints] of Object.entries(table.shards)) shards[id] = Object.freeze([...endpoints]) as string[];
  return Object.freeze({
    kind,
    table: Object.freeze({ placement: Object.freeze({ ...table.placement }), shards: Object.freeze(shards) }),
    revisions: Object.freeze({ ...revisions }),
    appliedAt,
  });
}

/**
 * The routing tables of one replica: the last good table per kind, swapped atomically.
 * KV parts arrive one key at a time; the newest valid value of each part is kept as a
 * candidate and the pair is applied as soon as it is consistent (placement names only known
 * shards), so writing `shards` before `placement` never exposes a half change, and writing
 * them in the other order applies both once the second arrives.
 */
export class RoutingTable {
  private readonly snapshots = new Map<ServiceKind, KindSnapshot>();
  private readonly candidates = new Map<ServiceKind, Candidate>();
  private readonly rejections = new Map<ServiceKind, Rejection>();
  private loaded = false;

  constructor() {
    for (const kind of SERVICE_KINDS) {
      this.snapshots.set(kind, freeze(kind, emptyKindTable(), { placement: 0, shards: 0 }, undefined));
      this.candidates.set(kind, { placement: { value: {}, revision: 0 }, shards: { value: {}, revision: 0 } });
    }
  }

  get isLoaded(): boolean {
    return this.loaded;
  }

  markLoaded(): void {
    this.loaded = true;
  }

  snapshot(kind: ServiceKind): KindSnapshot {
    return this.snapshots.get(kind)!;
  }

  lastRejection(kind: ServiceKind): Rejection | undefined {
    return this.rejections.get(kind);
  }

  /** Tenant → shard; `undefined` when neither the tenant nor `*` is placed. */
  resolve(kind: ServiceKind, tenantId: string | undefined): ResolvedShard | undefined {
    const { table } = this.snapshots.get(kind)!;
    const matched = tenantId !== undefined && Object.hasOwn(table.placement, tenantId) ? tenantId : DEFAULT_PLACEMENT;
    if (!Object.hasOwn(table.placement, matched)) return undefined;
    const shardId = table.placement[matched]!;
    const endpoints = table.shards[shardId];
    if (endpoints === undefined || endpoints.length === 0) return undefined;
    return { kind, shardId, endpoints, matched };
  }

  /**
   * One KV part changed (`raw` null = deleted, read as empty). Invalid JSON or shape is
   * rejected and changes nothing; a valid part becomes the candidate and is applied with
   * the other part's candidate when the two are consistent.
   */
  offerPart(kind: ServiceKind, part: RoutingPart, raw: string | Uint8Array | null, revision: number): OfferResult {
    let value: Placement | ShardDirectory;
    try {
      value = raw === null ? {} : parsePart(kind, part, raw);
    } catch (error) {
      return this.reject(kind, part, revision, error);
    }
    const candidate = this.candidates.get(kind)!;
    const next: Candidate =
      part === 'placement'
        ? { ...candidate, placement: { value: value as Placement, revision } }
        : { ...candidate, shards: { value: value as ShardDirectory, revision } };
    this.candidates.set(kind, next);
    const result = this.applyCandidate(kind, part, revision);
    if (result.applied) return result;
    // The other part may hold a pending value that is itself inconsistent; this part can
    // still go live next to the other part in force.
    const current = this.snapshots.get(kind)!;
    const withCurrent: Candidate =
      part === 'placement'
        ? { placement: next.placement, shards: { value: current.table.shards, revision: current.revisions.shards } }
        : { placement: { value: current.table.placement, revision: current.revisions.placement }, shards: next.shards };
    const table: KindTable = { placement: withCurrent.placement.value, shards: withCurrent.shards.value };
    try {
      checkConsistency(kind, table);
    } catch {
      return result;
    }
    const snapshot = freeze(kind, table, { placement: withCurrent.placement.revision, shards: withCurrent.shards.revision }, new Date());
    this.snapshots.set(kind, snapshot);
    return { applied: true, snapshot };
  }

  /**
   * Both parts of one kind read together (start-up, reload): they are one consistent
   * document, so the pair is applied at once rather than part by part (a placement offered
   * before its shards would be refused for naming shards not yet known). A part that does
   * not parse is refused on its own and the other one goes the single-part way.
   */
  offerParts(
    kind: ServiceKind,
    placement: { raw: string | Uint8Array | null; revision: number },
    shards: { raw: string | Uint8Array | null; revision: number },
  ): OfferResult[] {
    let placementValue: Placement;
    let shardsValue: ShardDirectory;
    try {
      placementValue = placement.raw === null ? {} : (parsePart(kind, 'placement', placement.raw) as Placement);
    } catch (error) {
      return [this.reject(kind, 'placement', placement.revision, error), this.offerPart(kind, 'shards', shards.raw, shards.revision)];
    }
    try {
      shardsValue = shards.raw === null ? {} : (parsePart(kind, 'shards', shards.raw) as ShardDirectory);
    } catch (error) {
      return [this.reject(kind, 'shards', shards.revision, error), this.offerPart(kind, 'placement', placement.raw, placement.revision)];
    }
    this.candidates.set(kind, {
      placement: { value: placementValue, revision: placement.revision },
      shards: { value: shardsValue, revision: shards.revision },
    });
    return [this.applyCandidate(kind, 'document', Math.max(placement.revision, shards.revision))];
  }

  /** A whole document (file source): every kind is applied, or rejected, on its own. */
  offerDocument(document: RoutingDocument, revision: number): OfferResult[] {
    return SERVICE_KINDS.map((kind) => {
      this.candidates.set(kind, {
        placement: { value: document[kind].placement, revision },
        shards: { value: document[kind].shards, revision },
      });
      return this.applyCandidate(kind, 'document', revision);
    });
  }

  /** Records a refusal that happened before parsing (e.g. an unreadable file). */
  reject(kind: ServiceKind, part: RoutingPart | 'document', revision: number, error: unknown): OfferResult {
    const problems =
      error instanceof RoutingValidationError
        ? error.problems
        : [{ path: `${kind}.${part}`, message: error instanceof Error ? error.message : 'invalid' }];
    const rejection: Rejection = { at: new Date(), kind, part, revision, problems };
    this.rejections.set(kind, rejection);
    return { applied: false, rejection };
  }

  private applyCandidate(kind: ServiceKind, part: RoutingPart | 'document', revision: number): OfferResult {
    const candidate = this.candidates.get(kind)!;
    const table: KindTable = { placement: candidate.placement.value, shards: candidate.shards.value };
    try {
      checkConsistency(kind, table);
    } catch (error) {
      return this.reject(kind, part, revision, error);
    }
    const snapshot = freeze(kind, table, { placement: candidate.placement.revision, shards: candidate.shards.revision }, new Date());
    this.snapshots.set(kind, snapshot);
    return { applied: true, snapshot };
  }
}
