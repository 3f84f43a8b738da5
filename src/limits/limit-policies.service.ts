import { Inject, Injectable } from '@nestjs/common';
import type { Rate } from '../config/config-values';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { scopePolicy, type ScopePolicy } from './limit-policies';

/** A tenant's own rate and burst (PUT /admin/tenants/{id}/limits), for each route class separately. */
export interface TenantOverride {
  rate: Rate;
  burst: number;
}

/**
 * The limits in force: configured defaults, and per-tenant overrides kept in memory so a
 * check reads them with one map lookup (TenantLimitsService keeps the map in step with the
 * database on every replica).
 */
@Injectable()
export class LimitPolicies {
  readonly tenantDefault: ScopePolicy | undefined;
  readonly principal: ScopePolicy | undefined;
  readonly ipInFlight: number;
  private overrides = new Map<string, ScopePolicy | undefined>();

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    this.tenantDefault = scopePolicy('tenant', config.TENANT_RATE_LIMIT, config.TENANT_RATE_BURST);
    this.principal = scopePolicy('principal', config.PRINCIPAL_RATE_LIMIT, config.PRINCIPAL_RATE_BURST);
    // per replica, divided among its processes (CONTRACT §9, WORKERS); rates stay service-wide
    // because each worker takes part in the shared budget as one more peer
    this.ipInFlight = config.IP_IN_FLIGHT_LIMIT === 0 ? 0 : Math.max(1, Math.floor(config.IP_IN_FLIGHT_LIMIT / config.WORKERS));
  }

  tenant(tenantId: string): ScopePolicy | undefined {
    const override = this.overrides.get(tenantId);
    return override === undefined && !this.overrides.has(tenantId) ? this.tenantDefault : override;
  }

  /** Swaps the whole override table at once (readers never see half of a change). */
  replaceOverrides(overrides: Iterable<[string, TenantOverride]>): void {
    const next = new Map<string, ScopePolicy | undefined>();
    for (const [tenantId, override] of overrides) next.set(tenantId, scopePolicy('tenant', override.rate, override.burst));
    this.overrides = next;
  }

  /** Whether any proxied scope is on at all (the guard skips everything when none is). */
  get anyEnabled(): boolean {
    return this.tenantDefault !== undefined || this.principal !== undefined || this.ipInFlight > 0 || this.overrides.size > 0;
  }
}
