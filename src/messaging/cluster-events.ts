/**
 * Events whose effect must reach every replica. Delivered in-process at once and fanned
 * out over NATS (subject gatehouse.events.<name>) when configured.
 */
export interface ClusterEvents {
  /** these sessions' tokens must stop working now (signout, reset, reuse, admin revoke, disable) */
  'session.revoked': { sessionIds: string[] };
  /** a principal was disabled, enabled or deleted */
  'principal.status_changed': { principalId: string; active: boolean };
  /** roles, grants, assignments or tenants changed */
  'authz.changed': { principalIds?: string[] };
  /** the routing table changed (KV or reload) */
  'routing.changed': { kind?: string };
  /** a tenant's traffic limit override was set or removed (CONTRACT §9) */
  'limits.changed': { tenantId: string };
  /** signing keys were rotated or retired */
  'keys.changed': Record<string, never>;
}

export type ClusterEventName = keyof ClusterEvents;
