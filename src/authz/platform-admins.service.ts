import { Injectable, type OnModuleInit } from '@nestjs/common';
import { PrismaService } from '../database/prisma.service';
import type { Db } from '../database/transaction';
import { ClusterEventBus } from '../messaging/cluster-event-bus';
import { NatsConnectionService } from '../messaging/nats-connection.service';

const MARKER = 'platform_admin:';

/**
 * Interim holder of who is platform admin (the bootstrap admin), kept in memory and
 * refreshed by `authz.changed`. The RBAC work replaces it with role assignments.
 */
@Injectable()
export class PlatformAdminsService implements OnModuleInit {
  private admins = new Set<string>();

  constructor(
    private readonly prisma: PrismaService,
    private readonly events: ClusterEventBus,
    nats: NatsConnectionService,
  ) {
    nats.onReconnect(() => void this.reload().catch(() => undefined));
  }

  async onModuleInit(): Promise<void> {
    this.events.on('authz.changed', () => this.reload());
    await this.reload();
  }

  isPlatformAdmin(principalId: string): boolean {
    return this.admins.has(principalId);
  }

  async grant(db: Db, userId: string): Promise<void> {
    await db.systemSetting.upsert({ where: { key: MARKER + userId }, create: { key: MARKER + userId, value: 'bootstrap' }, update: {} });
  }

  countIn(db: Db): Promise<number> {
    return db.systemSetting.count({ where: { key: { startsWith: MARKER } } });
  }

  private async reload(): Promise<void> {
    const rows = await this.prisma.systemSetting.findMany({ where: { key: { startsWith: MARKER } }, select: { key: true } });
    this.admins = new Set(rows.map((row) => row.key.slice(MARKER.length)));
  }
}
