import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import type { Logger } from 'pino';
import { z } from 'zod';
import { AuditService } from '../audit/audit.service';
import { TenantRepository } from '../authz/tenant.repository';
import { AppError } from '../common/app-error';
import { parseRate, type Rate } from '../config/config-values';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { PrismaService } from '../database/prisma.service';
import { ClusterEventBus } from '../messaging/cluster-event-bus';
import { NatsConnectionService } from '../messaging/nats-connection.service';
import { LOGGER } from '../observability/logger';
import { defaultBurst, formatRate } from './limit-policies';
import { LimitPolicies, type TenantOverride } from './limit-policies.service';
import { TenantLimitsRepository } from './tenant-limits.repository';

export const tenantLimitsSchema = z.object({
  tenant_id: z.string(),
  rate: z.string(),
  burst: z.number().int(),
  source: z.enum(['override', 'default']),
});
export type TenantLimitsView = z.infer<typeof tenantLimitsSchema>;

export const tenantLimitsBody = z.object({
  rate: z.string().refine((value) => parseRate(value) !== undefined, 'must be N/<duration> (e.g. 300/60s, 20/1m, 5/1s) or 0'),
  burst: z.number().int().min(1).max(1_000_000_000).optional(),
});
export type TenantLimitsBody = z.infer<typeof tenantLimitsBody>;

/** How often overrides are re-read even without an event (NATS down, a lost message). */
const RESYNC_MS = 5000;

/**
 * Per-tenant overrides of TENANT_RATE_LIMIT (CONTRACT §9): written with their audit record in
 * one transaction, then every replica reloads the table (cluster event `limits.changed`, a
 * NATS reconnect, and a resync every few seconds) into LimitPolicies' in-memory map.
 */
@Injectable()
export class TenantLimitsService implements OnModuleInit {
  private resync: NodeJS.Timeout | undefined;

  constructor(
    private readonly prisma: PrismaService,
    private readonly repository: TenantLimitsRepository,
    private readonly tenants: TenantRepository,
    private readonly audit: AuditService,
    private readonly events: ClusterEventBus,
    private readonly policies: LimitPolicies,
    private readonly nats: NatsConnectionService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async onModuleInit(): Promise<void> {
    this.events.on('limits.changed', () => this.reload());
    this.nats.onReconnect(() => void this.reload());
    await this.reload();
    this.resync = setInterval(() => void this.reload(), RESYNC_MS);
    this.resync.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.resync);
  }

  async reload(): Promise<void> {
    try {
      const rows = await this.repository.all(this.prisma);
      const overrides: Array<[string, TenantOverride]> = [];
      for (const row of rows) {
        const rate = parseRate(row.rate);
        if (rate !== undefined) overrides.push([row.tenantId, { rate, burst: row.burst }]);
      }
      this.policies.replaceOverrides(overrides);
    } catch (error) {
      this.logger.warn({ err: error }, 'tenant limit overrides not reloaded; the last ones stay');
    }
  }

  async get(tenantId: string): Promise<TenantLimitsView> {
    await this.assertTenant(tenantId);
    const row = await this.repository.find(this.prisma, tenantId);
    return row === null ? this.defaultView(tenantId) : { tenant_id: tenantId, rate: row.rate, burst: row.burst, source: 'override' };
  }

  async put(tenantId: string, body: TenantLimitsBody): Promise<TenantLimitsView> {
    const rate = parseRate(body.rate)!;
    const normalized = formatRate(rate);
    const burst = body.burst ?? defaultBurst(rate);
    await this.prisma.$transaction(async (tx) => {
      if (!(await this.tenants.exists(tx, tenantId))) throw new AppError('not_found');
      const before = await this.repository.find(tx, tenantId);
      await this.repository.upsert(tx, tenantId, normalized, burst);
      await this.audit.record(tx, {
        action: 'platform.tenant.limits_update',
        target: { type: 'tenant', id: tenantId },
        tenantId,
        changes: { rate: { from: before?.rate ?? null, to: normalized }, burst: { from: before?.burst ?? null, to: burst } },
      });
    });
    await this.events.publish('limits.changed', { tenantId });
    return { tenant_id: tenantId, rate: normalized, burst, source: 'override' };
  }

  async remove(tenantId: string): Promise<TenantLimitsView> {
    await this.prisma.$transaction(async (tx) => {
      if (!(await this.tenants.exists(tx, tenantId))) throw new AppError('not_found');
      const before = await this.repository.find(tx, tenantId);
      if (!(await this.repository.remove(tx, tenantId))) return;
      await this.audit.record(tx, {
        action: 'platform.tenant.limits_update',
        target: { type: 'tenant', id: tenantId },
        tenantId,
        changes: { rate: { from: before?.rate ?? null, to: null }, burst: { from: before?.burst ?? null, to: null } },
      });
    });
    await this.events.publish('limits.changed', { tenantId });
    return this.defaultView(tenantId);
  }

  private defaultView(tenantId: string): TenantLimitsView {
    const rate: Rate = this.config.TENANT_RATE_LIMIT;
    const burst = rate.limit === 0 ? 0 : (this.config.TENANT_RATE_BURST ?? defaultBurst(rate));
    return { tenant_id: tenantId, rate: formatRate(rate), burst, source: 'default' };
  }

  private async assertTenant(tenantId: string): Promise<void> {
    if (!(await this.tenants.exists(this.prisma, tenantId))) throw new AppError('not_found');
  }
}
