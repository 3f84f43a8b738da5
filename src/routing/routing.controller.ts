import { Controller, Get, HttpCode, Inject, Post, Query } from '@nestjs/common';
import { z } from 'zod';
import { AuditService } from '../audit/audit.service';
import { Requires } from '../authz/auth-declaration';
import { AppError } from '../common/app-error';
import { ZodValidationPipe } from '../common/zod-validation.pipe';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { PrismaService } from '../database/prisma.service';
import { SERVICE_KINDS, type ServiceKind } from './routing-document';
import { RoutingService } from './routing.service';

const resolveQuery = z.object({
  service_kind: z.enum(SERVICE_KINDS),
  tenant_id: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{1,62}$/, 'must be a tenant id')
    .optional(),
});

/** Operators' view of the routing tables in force on this replica (CONTRACT §7). */
@Controller('admin/routing')
export class RoutingController {
  constructor(
    private readonly routing: RoutingService,
    private readonly prisma: PrismaService,
    private readonly audit: AuditService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  @Get()
  @Requires('platform.routing.read')
  describe(): object {
    return this.view();
  }

  /** Where a tenant's calls of one kind go; `tenant_id` omitted = the default (`*`) placement. */
  @Get('resolve')
  @Requires('platform.routing.read')
  resolve(@Query(new ZodValidationPipe(resolveQuery)) query: z.infer<typeof resolveQuery>): object {
    const resolved = this.routing.peek(query.service_kind, query.tenant_id);
    if (resolved === undefined) throw new AppError('tenant_not_routed');
    return {
      service_kind: query.service_kind,
      tenant_id: query.tenant_id ?? null,
      shard_id: resolved.shardId,
      endpoints: resolved.endpoints,
      matched: resolved.matched === '*' ? 'default' : 'tenant',
      revisions: this.routing.snapshot(query.service_kind).revisions,
    };
  }

  /** Re-reads the source (KV bucket or ROUTING_FILE) here and on every other replica. */
  @Post('reload')
  @HttpCode(200)
  @Requires('platform.routing.write')
  async reload(): Promise<object> {
    await this.routing.reloadEverywhere();
    const view = this.view();
    // an operator action worth a trace, though it changes no row
    await this.prisma.$transaction((tx) =>
      this.audit.record(tx, { action: 'platform.routing.reload', target: { type: 'routing', id: 'tables' } }),
    );
    return view;
  }

  private view(): object {
    const kinds: Record<string, object> = {};
    for (const kind of SERVICE_KINDS) kinds[kind] = this.kindView(kind);
    return {
      source: this.routing.source,
      bucket: this.routing.source === 'kv' ? this.config.ROUTING_KV_BUCKET : null,
      loaded: this.routing.isLoaded,
      service_kinds: kinds,
    };
  }

  private kindView(kind: ServiceKind): object {
    const snapshot = this.routing.snapshot(kind);
    const rejection = this.routing.lastRejection(kind);
    return {
      revisions: snapshot.revisions,
      applied_at: snapshot.appliedAt?.toISOString() ?? null,
      placement: snapshot.table.placement,
      shards: snapshot.table.shards,
      last_rejection:
        rejection === undefined
          ? null
          : { at: rejection.at.toISOString(), part: rejection.part, revision: rejection.revision, errors: rejection.problems },
    };
  }
}
