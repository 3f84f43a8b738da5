import { AppError } from '../common/app-error';
import { DEFAULT_PLACEMENT, type Placement } from '../routing/routing-document';

/** Where a tenant is placed: its own entry, else the `*` default. */
export function placedShard(placement: Placement, tenantId: string): { shard: string | undefined; entry: string | null } {
  const entry = Object.hasOwn(placement, tenantId) ? placement[tenantId]! : null;
  return { shard: entry ?? (Object.hasOwn(placement, DEFAULT_PLACEMENT) ? placement[DEFAULT_PLACEMENT] : undefined), entry };
}

/**
 * The placement with the tenant pinned to `to`, provided it is still on `from`. Entries of
 * other tenants are taken as they are now, which is what lets a compare-and-set that lost to
 * an unrelated write simply retry.
 */
export function moveTenant(placement: Placement, tenantId: string, from: string, to: string): Placement {
  const { shard } = placedShard(placement, tenantId);
  if (shard !== from) {
    throw new AppError('conflict', {
      detail: `the tenant is no longer on shard ${from}`,
      logReason: `tenant on ${shard ?? 'nothing'}, plan expects ${from}`,
    });
  }
  return { ...placement, [tenantId]: to };
}

/**
 * The placement with the tenant back where it was: its old entry, or no entry at all when it
 * came from the `*` default (so it follows the default again rather than being pinned).
 */
export function restoreTenant(placement: Placement, tenantId: string, current: string, previousEntry: string | null): Placement {
  const { shard } = placedShard(placement, tenantId);
  if (shard !== current) {
    throw new AppError('conflict', {
      detail: `the tenant is no longer on shard ${current}`,
      logReason: `tenant on ${shard ?? 'nothing'}, rollback expects ${current}`,
    });
  }
  const next = { ...placement };
  if (previousEntry === null) delete next[tenantId];
  else next[tenantId] = previousEntry;
  return next;
}
