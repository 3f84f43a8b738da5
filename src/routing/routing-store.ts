import type { KV } from '@nats-io/kv';
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';

/** One key of the routing source as stored: `value` null when absent or deleted. */
export interface StoredValue {
  value: string | null;
  /** KV revision of the key's last write (0 = never written) */
  revision: number;
}

/** The key moved on since the revision the writer read (someone else wrote it). */
export class StaleRevisionError extends Error {
  constructor(
    readonly key: string,
    readonly expectedRevision: number,
  ) {
    super(`${key}: revision ${expectedRevision} is no longer the latest`);
    this.name = 'StaleRevisionError';
  }
}

/**
 * Where routing writes go: the JetStream KV bucket (shared by every replica, `persisted`), or
 * in single-node mode this replica's memory, which a reload of ROUTING_FILE overwrites.
 * Writes are compare-and-set on the key's revision, so two writers cannot both win.
 */
export interface RoutingStore {
  readonly persisted: boolean;
  read(key: string): Promise<StoredValue>;
  /** Writes `value` if the key is still at `expectedRevision` (0 = never written); returns the new revision. */
  compareAndSet(key: string, value: string, expectedRevision: number): Promise<number>;
}

function isWrongLastSequence(error: unknown): boolean {
  return (
    error instanceof JetStreamApiError &&
    (error.code === JetStreamApiCodes.StreamWrongLastSequence || error.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

export class KvRoutingStore implements RoutingStore {
  readonly persisted = true;

  constructor(private readonly kv: KV) {}

  async read(key: string): Promise<StoredValue> {
    const entry = await this.kv.get(key);
    if (entry === null) return { value: null, revision: 0 };
    return { value: entry.operation === 'PUT' ? entry.string() : null, revision: entry.revision };
  }

  async compareAndSet(key: string, value: string, expectedRevision: number): Promise<number> {
    try {
      // the expected-last-subject-sequence header makes JetStream refuse a stale write
      return await this.kv.put(key, value, { previousSeq: expectedRevision });
    } catch (error) {
      if (isWrongLastSequence(error)) throw new StaleRevisionError(key, expectedRevision);
      throw error;
    }
  }
}

/** Single-node mode: one process, so a plain map with a revision counter is the whole store. */
export class MemoryRoutingStore implements RoutingStore {
  readonly persisted = false;
  private readonly values = new Map<string, StoredValue>();
  private counter = 0;

  /** The next revision; a file load uses one for every key it sets. */
  nextRevision(): number {
    this.counter += 1;
    return this.counter;
  }

  set(key: string, value: string | null, revision: number): void {
    this.values.set(key, { value, revision });
  }

  read(key: string): Promise<StoredValue> {
    return Promise.resolve(this.values.get(key) ?? { value: null, revision: 0 });
  }

  compareAndSet(key: string, value: string, expectedRevision: number): Promise<number> {
    const current = this.values.get(key)?.revision ?? 0;
    if (current !== expectedRevision) return Promise.reject(new StaleRevisionError(key, expectedRevision));
    const revision = this.nextRevision();
    this.values.set(key, { value, revision });
    return Promise.resolve(revision);
  }
}
