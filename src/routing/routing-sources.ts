import fs from 'node:fs/promises';
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { FORWARD_RULES_KEY } from './forward-rules-document';
import { ROUTING_PARTS, SERVICE_KINDS, parseDocument, partKey, type RoutingDocument } from './routing-document';

/** Reads and validates the file form (ROUTING_FILE). */
export async function readRoutingFile(file: string): Promise<RoutingDocument> {
  let raw: string;
  try {
    raw = await fs.readFile(file, 'utf8');
  } catch (error) {
    throw new Error(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  return parseDocument(raw);
}

/** Every part key of the bucket: `aggregate.placement`, `aggregate.shards`, ..., `forward.rules`. */
export const PART_KEYS = [...SERVICE_KINDS.flatMap((kind) => ROUTING_PARTS.map((part) => partKey(kind, part))), FORWARD_RULES_KEY];

/** Opens (creating if needed) the routing bucket. */
export async function openRoutingBucket(nc: NatsConnection, bucket: string): Promise<KV> {
  return new Kvm(nc).create(bucket, { history: 10 });
}

/**
 * Seeds an empty bucket from the file document. `create` fails when a key exists, so two
 * replicas seeding at once write each key once.
 */
export async function seedBucket(kv: KV, document: RoutingDocument): Promise<number> {
  const status = await kv.status();
  if (status.values > 0) return 0;
  let written = 0;
  for (const kind of SERVICE_KINDS) {
    for (const part of ROUTING_PARTS) {
      try {
        await kv.create(partKey(kind, part), JSON.stringify(document[kind][part]));
        written += 1;
      } catch {
        // another replica seeded it first
      }
    }
  }
  if (document.forward !== undefined) {
    try {
      await kv.create(FORWARD_RULES_KEY, JSON.stringify(document.forward.rules));
      written += 1;
    } catch {
      // another replica seeded it first
    }
  }
  return written;
}

/** Current entries of every part key (null when absent or deleted). */
export async function readParts(kv: KV): Promise<Map<string, KvEntry | null>> {
  const entries = await Promise.all(PART_KEYS.map(async (key) => [key, await kv.get(key)] as const));
  return new Map(entries.map(([key, entry]) => [key, entry]));
}
