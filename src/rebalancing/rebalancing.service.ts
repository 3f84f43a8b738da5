import { Injectable } from '@nestjs/common';
import { Counter } from 'prom-client';
import { AuditService } from '../audit/audit.service';
import { AppError } from '../common/app-error';
import { decodeCursor, toPage, type Page } from '../common/pagination';
import { PrismaService } from '../database/prisma.service';
import type { RebalancingPlan } from '../generated/prisma/client';
import { MetricsService } from '../observability/metrics.service';
import { RoutingValidationError, parsePart, partKey, type Placement, type ServiceKind } from '../routing/routing-document';
import type { StoredValue } from '../routing/routing-store';
import { RoutingWriteService } from '../routing/routing-write.service';
import { RoutingService } from '../routing/routing.service';
import type { Principal } from '../session/principal';
import { moveTenant, placedShard, restoreTenant } from './placement-moves';
import { ReadinessProbe, type ReadinessCheck } from './readiness-probe.service';
import { RebalancingPlanRepository } from './rebalancing-plan.repository';
import { z } from 'zod';

export const planSchema = z
  .object({
    id: z.string(),
    service_kind: z.string(),
    tenant_id: z.string(),
    from_shard: z.string(),
    target_shard: z.string(),
    status: z.string().describe('planned, applied, not_ready, conflict or rolled_back'),
    placement_revision: z.number().int(),
    checks: z.array(z.object({ endpoint: z.string(), ready: z.boolean(), reason: z.string().nullable(), lag: z.number().optional() })),
    persisted: z.boolean(),
    created_at: z.string(),
    applied_at: z.string().nullable(),
    rolled_back_at: z.string().nullable(),
  })
  .meta({ id: 'RebalancingPlan' });
export type PlanView = z.infer<typeof planSchema>;

export interface NewPlanRequest {
  service_kind: ServiceKind;
  tenant_id: string;
  target_shard: string;
}

type Outcome = 'planned' | 'applied' | 'not_ready' | 'conflict' | 'rolled_back';

function viewOf(plan: RebalancingPlan): PlanView {
  return {
    id: plan.id,
    service_kind: plan.serviceKind,
    tenant_id: plan.tenantId,
    from_shard: plan.fromShard,
    target_shard: plan.targetShard,
    status: plan.status,
    placement_revision: Number(plan.placementRevision),
    checks: plan.checks as unknown as ReadinessCheck[],
    persisted: plan.persisted,
    created_at: plan.createdAt.toISOString(),
    applied_at: plan.appliedAt?.toISOString() ?? null,
    rolled_back_at: plan.rolledBackAt?.toISOString() ?? null,
  };
}

/** The placement as stored (not only as in force here), so a plan starts from the source of truth. */
function placementOf(kind: ServiceKind, stored: StoredValue): Placement {
  if (stored.value === null) return {};
  try {
    return parsePart(kind, 'placement', stored.value) as Placement;
  } catch (error) {
    if (error instanceof RoutingValidationError) {
      throw new AppError('conflict', { detail: 'the stored placement is invalid; fix it first', logReason: error.message });
    }
    throw error;
  }
}

/**
 * Moves one tenant of one service kind to another shard (CONTRACT §11): a plan records where
 * the tenant is and asks the target's endpoints whether they are ready; apply asks again and
 * writes the placement compare-and-set; rollback puts the previous placement back. The KV
 * watch puts each write in force on every replica, and the subscription registry closes the
 * tenant's subscriptions to the old shard (1012) when it sees the change.
 */
@Injectable()
export class RebalancingService {
  private readonly outcomes: Counter<'service_kind' | 'outcome'>;

  constructor(
    private readonly plans: RebalancingPlanRepository,
    private readonly routing: RoutingService,
    private readonly writes: RoutingWriteService,
    private readonly probe: ReadinessProbe,
    private readonly prisma: PrismaService,
    private readonly audit: AuditService,
    metrics: MetricsService,
  ) {
    this.outcomes = new Counter({
      name: 'gatehouse_rebalancing_total',
      help: 'Rebalancing steps by service kind and outcome',
      labelNames: ['service_kind', 'outcome'] as const,
      registers: [metrics.registry],
    });
  }

  async list(limit: number, cursor: string | undefined): Promise<Page<PlanView>> {
    const rows = await this.plans.listAfter(decodeCursor(cursor), limit + 1);
    return toPage(rows, limit, (row) => row.id, viewOf);
  }

  async get(id: string): Promise<PlanView> {
    return viewOf(await this.find(id));
  }

  async create(principal: Principal, request: NewPlanRequest): Promise<PlanView> {
    const kind = request.service_kind;
    const shards = this.routing.snapshot(kind).table.shards;
    if (!Object.hasOwn(shards, request.target_shard)) {
      throw new AppError('validation_failed', { errors: [{ path: 'target_shard', message: `unknown ${kind} shard` }] });
    }
    const store = this.routing.store;
    const stored = await store.read(partKey(kind, 'placement'));
    const { shard: fromShard, entry } = placedShard(placementOf(kind, stored), request.tenant_id);
    if (fromShard === undefined) {
      throw new AppError('tenant_not_routed', { detail: 'the tenant has no placement (and there is no default) to move from' });
    }
    if (fromShard === request.target_shard) {
      throw new AppError('validation_failed', { errors: [{ path: 'target_shard', message: 'is the shard the tenant is already on' }] });
    }
    const checks = await this.probe.check(kind, shards[request.target_shard]!, request.tenant_id, principal);
    const plan = await this.prisma.$transaction(async (tx) => {
      const created = await this.plans.create(tx, {
        serviceKind: kind,
        tenantId: request.tenant_id,
        fromShard,
        fromEntry: entry,
        targetShard: request.target_shard,
        placementRevision: stored.revision,
        checks,
        persisted: store.persisted,
        createdBy: principal.id,
      });
      await this.audit.record(tx, {
        action: 'rebalancing.plan',
        target: { type: 'rebalancing_plan', id: created.id },
        tenantId: request.tenant_id,
        changes: {
          service_kind: kind,
          from_shard: fromShard,
          target_shard: request.target_shard,
          placement_revision: stored.revision,
          checks,
        },
      });
      return created;
    });
    this.count(kind, 'planned');
    return viewOf(plan);
  }

  async apply(principal: Principal, id: string): Promise<PlanView> {
    const plan = await this.find(id);
    const kind = plan.serviceKind as ServiceKind;
    if (plan.status !== 'planned') this.refuse(kind, `the plan is already ${plan.status.replace('_', ' ')}`);
    if (await this.plans.otherMovedSince(plan)) {
      this.refuse(kind, 'another plan for this tenant was applied or rolled back since this one was made');
    }
    const endpoints = this.routing.snapshot(kind).table.shards[plan.targetShard];
    if (endpoints === undefined) this.refuse(kind, `shard ${plan.targetShard} no longer exists`);

    const checks = await this.probe.check(kind, endpoints, plan.tenantId, principal);
    if (checks.some((check) => !check.ready)) {
      await this.prisma.$transaction(async (tx) => {
        await this.plans.saveChecks(tx, plan.id, checks);
        await this.audit.record(tx, {
          action: 'rebalancing.apply_denied',
          target: { type: 'rebalancing_plan', id: plan.id },
          tenantId: plan.tenantId,
          changes: { service_kind: kind, target_shard: plan.targetShard, checks },
        });
      });
      this.count(kind, 'not_ready');
      throw new AppError('target_not_ready', {
        detail: `not every endpoint of ${plan.targetShard} reports the tenant ready`,
        extensions: { checks },
      });
    }

    const written = await this.writePlacement(kind, (placement) => moveTenant(placement, plan.tenantId, plan.fromShard, plan.targetShard));
    const applied = await this.prisma.$transaction(async (tx) => {
      if (!(await this.plans.markApplied(tx, plan.id, checks, written.persisted))) return false;
      await this.audit.record(tx, {
        action: 'rebalancing.apply',
        target: { type: 'rebalancing_plan', id: plan.id },
        tenantId: plan.tenantId,
        changes: {
          service_kind: kind,
          from_shard: plan.fromShard,
          target_shard: plan.targetShard,
          placement_revision: written.revision,
          persisted: written.persisted,
          checks,
        },
      });
      return true;
    });
    if (!applied) this.refuse(kind, 'the plan was applied by another request');
    this.count(kind, 'applied');
    return this.get(plan.id);
  }

  async rollback(id: string): Promise<PlanView> {
    const plan = await this.find(id);
    const kind = plan.serviceKind as ServiceKind;
    if (plan.status !== 'applied') {
      this.refuse(kind, plan.status === 'planned' ? 'the plan was never applied' : 'the plan is already rolled back');
    }
    const written = await this.writePlacement(kind, (placement) =>
      restoreTenant(placement, plan.tenantId, plan.targetShard, plan.fromEntry),
    );
    const rolledBack = await this.prisma.$transaction(async (tx) => {
      if (!(await this.plans.markRolledBack(tx, plan.id, written.persisted))) return false;
      await this.audit.record(tx, {
        action: 'rebalancing.rollback',
        target: { type: 'rebalancing_plan', id: plan.id },
        tenantId: plan.tenantId,
        changes: {
          service_kind: kind,
          from_shard: plan.targetShard,
          target_shard: plan.fromShard,
          restored_entry: plan.fromEntry,
          placement_revision: written.revision,
          persisted: written.persisted,
        },
      });
      return true;
    });
    if (!rolledBack) this.refuse(kind, 'the plan was rolled back by another request');
    this.count(kind, 'rolled_back');
    return this.get(plan.id);
  }

  /** Compare-and-set of the kind's placement, then in force here at once (the watch tells the others). */
  private async writePlacement(kind: ServiceKind, change: (placement: Placement) => Placement) {
    const key = partKey(kind, 'placement');
    try {
      const written = await this.writes.update(key, (stored) => {
        const next = change(placementOf(kind, stored));
        const shards = this.routing.snapshot(kind).table.shards;
        for (const shard of new Set(Object.values(next))) {
          if (!Object.hasOwn(shards, shard)) throw new AppError('conflict', { detail: `shard ${shard} no longer exists` });
        }
        return JSON.stringify(next);
      });
      this.routing.applyWritten(key, written.value, written.revision);
      return written;
    } catch (error) {
      if (error instanceof AppError && error.code === 'conflict') this.count(kind, 'conflict');
      throw error;
    }
  }

  private async find(id: string): Promise<RebalancingPlan> {
    const plan = await this.plans.findById(id);
    if (plan === null) throw new AppError('not_found');
    return plan;
  }

  private refuse(kind: ServiceKind, detail: string): never {
    this.count(kind, 'conflict');
    throw new AppError('conflict', { detail });
  }

  private count(kind: string, outcome: Outcome): void {
    this.outcomes.inc({ service_kind: kind, outcome });
  }
}
