/**
 * The map kept in `outer` under `key`, made (empty) the first time. For the per-request lookups
 * keyed part by part (route, method, status; right, tenant, resource; scope, route class, id):
 * each part is a string V8 has already hashed, where one key string built per request would be
 * hashed character by character on every lookup.
 */
export function mapIn<K, K2, V>(outer: Map<K, Map<K2, V>>, key: K): Map<K2, V> {
  let inner = outer.get(key);
  if (inner === undefined) {
    inner = new Map();
    outer.set(key, inner);
  }
  return inner;
}
