import { Injectable } from '@nestjs/common';
import type { Db } from '../database/transaction';
import { PrismaService } from '../database/prisma.service';
import type { Prisma, RebalancingPlan } from '../generated/prisma/client';
import type { ReadinessCheck } from './readiness-probe.service';

export type PlanStatus = 'planned' | 'applied' | 'rolled_back';

export interface NewPlan {
  serviceKind: string;
  tenantId: string;
  fromShard: string;
  fromEntry: string | null;
  targetShard: string;
  placementRevision: number;
  checks: ReadinessCheck[];
  persisted: boolean;
  createdBy: string | null;
}

const asJson = (checks: ReadinessCheck[]) => checks as unknown as Prisma.InputJsonValue;

/** The rebalancing_plans table; status changes are compare-and-set on the status they leave. */
@Injectable()
export class RebalancingPlanRepository {
  constructor(private readonly prisma: PrismaService) {}

  create(db: Db, plan: NewPlan): Promise<RebalancingPlan> {
    return db.rebalancingPlan.create({
      data: { ...plan, placementRevision: BigInt(plan.placementRevision), checks: asJson(plan.checks), status: 'planned' },
    });
  }

  findById(id: string): Promise<RebalancingPlan | null> {
    return this.prisma.rebalancingPlan.findUnique({ where: { id } });
  }

  /** Newest first would shift under a cursor; ids are UUIDv7, so ascending id is creation order. */
  listAfter(after: string | undefined, take: number): Promise<RebalancingPlan[]> {
    return this.prisma.rebalancingPlan.findMany({ where: after ? { id: { gt: after } } : {}, orderBy: { id: 'asc' }, take });
  }

  saveChecks(db: Db, id: string, checks: ReadinessCheck[]): Promise<unknown> {
    return db.rebalancingPlan.update({ where: { id }, data: { checks: asJson(checks) } });
  }

  /** planned → applied; false when another request moved the plan first. */
  async markApplied(db: Db, id: string, checks: ReadinessCheck[], persisted: boolean): Promise<boolean> {
    const result = await db.rebalancingPlan.updateMany({
      where: { id, status: 'planned' },
      data: { status: 'applied', appliedAt: new Date(), checks: asJson(checks), persisted },
    });
    return result.count === 1;
  }

  /** applied → rolled_back; false when another request moved the plan first. */
  async markRolledBack(db: Db, id: string, persisted: boolean): Promise<boolean> {
    const result = await db.rebalancingPlan.updateMany({
      where: { id, status: 'applied' },
      data: { status: 'rolled_back', rolledBackAt: new Date(), persisted },
    });
    return result.count === 1;
  }

  /** Whether another plan of the same tenant and kind was applied or rolled back after `since`. */
  async otherMovedSince(plan: RebalancingPlan): Promise<boolean> {
    const found = await this.prisma.rebalancingPlan.findFirst({
      where: {
        serviceKind: plan.serviceKind,
        tenantId: plan.tenantId,
        id: { not: plan.id },
        OR: [{ appliedAt: { gte: plan.createdAt } }, { rolledBackAt: { gte: plan.createdAt } }],
      },
      select: { id: true },
    });
    return found !== null;
  }
}
