import { ApiBody, ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '@nestjs/swagger';
import { Body, Controller, Get, Headers, HttpCode, Inject, Param, Post, Put, Query, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import { AuditService } from '../audit/audit.service';
import { Requires } from '../common/auth-declaration';
import { AppError } from '../common/app-error';
import { ZodValidationPipe } from '../common/zod-validation.pipe';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { PrismaService } from '../database/prisma.service';
import { FORWARD_RULES_KEY } from './forward-rules-document';
import {
  ROUTING_PARTS,
  RoutingValidationError,
  SERVICE_KINDS,
  checkConsistency,
  parsePart,
  partKey,
  validateForwardRules,
  type RoutingPart,
  type ServiceKind,
} from './routing-document';
import { RoutingWriteService, etagOf } from './routing-write.service';
import { RoutingService } from './routing.service';

const partParams = z.object({ service_kind: z.enum(SERVICE_KINDS), part: z.enum(ROUTING_PARTS) });

const resolveQuery = z.object({
  service_kind: z.enum(SERVICE_KINDS),
  tenant_id: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{1,62}$/, 'must be a tenant id')
    .optional(),
});

const rejectionErrors = z.array(z.object({ path: z.string(), message: z.string() }));
const kindViewSchema = z.object({
  revisions: z
    .object({ placement: z.number().int(), shards: z.number().int() })
    .describe('store revision of each part in force (0 = none)'),
  applied_at: z.string().nullable(),
  placement: z.record(z.string(), z.string()).describe('tenant id (or `*`) → shard id'),
  shards: z.record(z.string(), z.array(z.string())).describe('shard id → endpoints'),
  last_rejection: z.object({ at: z.string(), part: z.string(), revision: z.number().int(), errors: rejectionErrors }).nullable(),
});
const routingViewSchema = z
  .object({
    source: z.string().describe('`kv` or `file`'),
    bucket: z.string().nullable(),
    loaded: z.boolean(),
    service_kinds: z.record(z.string(), kindViewSchema),
    forward: z.object({
      revision: z.number().int(),
      applied_at: z.string().nullable(),
      rules: z.array(z.record(z.string(), z.unknown())),
      last_rejection: z.object({ at: z.string(), revision: z.number().int(), errors: rejectionErrors }).nullable(),
    }),
  })
  .meta({ id: 'RoutingTables' });
const resolutionSchema = z
  .object({
    service_kind: z.string(),
    tenant_id: z.string().nullable(),
    shard_id: z.string(),
    endpoints: z.array(z.string()),
    matched: z.enum(['tenant', 'default']),
    revisions: z.object({ placement: z.number().int(), shards: z.number().int() }),
  })
  .meta({ id: 'RoutingResolution' });
const ETAG = { etag: { description: 'the new revision, for the next `If-Match`', schema: { type: 'string' } } };

/** Operators' view of the routing tables in force on this replica (CONTRACT §7). */
@ApiTags('admin-routing')
@Controller('admin/routing')
export class RoutingController {
  constructor(
    private readonly routing: RoutingService,
    private readonly writes: RoutingWriteService,
    private readonly prisma: PrismaService,
    private readonly audit: AuditService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  @Get()
  @Requires('platform.routing.read')
  @ApiOperation({ summary: 'The routing tables in force on this replica' })
  @ApiOkResponse({ standardSchema: routingViewSchema })
  describe(): object {
    return this.view();
  }

  /** Where a tenant's calls of one kind go; `tenant_id` omitted = the default (`*`) placement. */
  @Get('resolve')
  @Requires('platform.routing.read')
  @ApiOperation({ summary: 'Where a tenant’s calls of one kind go' })
  @ApiOkResponse({ standardSchema: resolutionSchema })
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
  @ApiOperation({ summary: 'Re-read the routing source here and on every replica' })
  @ApiOkResponse({ standardSchema: routingViewSchema })
  async reload(): Promise<object> {
    await this.routing.reloadEverywhere();
    const view = this.view();
    // an operator action worth a trace, though it changes no row
    await this.prisma.$transaction((tx) =>
      this.audit.record(tx, { action: 'platform.routing.reload', target: { type: 'routing', id: 'tables' } }),
    );
    return view;
  }

  /**
   * Replaces one part (`placement` or `shards`) of a kind, compare-and-set on the revision in
   * `If-Match`; refused exactly as a KV change would be, so the table in force stays valid.
   */
  @Put(':service_kind/:part')
  @Requires('platform.routing.write')
  @ApiParam({ name: 'service_kind', enum: SERVICE_KINDS })
  @ApiParam({ name: 'part', enum: ROUTING_PARTS })
  @ApiOperation({ summary: 'Replace the placement or the shards of a kind (compare-and-set on If-Match)' })
  @ApiBody({
    schema: { type: 'object', additionalProperties: true },
    description: 'placement: tenant id (or `*`) → shard id; shards: shard id → endpoints',
  })
  @ApiOkResponse({ standardSchema: routingViewSchema, headers: ETAG })
  async writePart(
    @Param(new ZodValidationPipe(partParams)) params: z.infer<typeof partParams>,
    @Headers('if-match') ifMatch: string | undefined,
    @Body() body: unknown,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<object> {
    const { service_kind: kind, part } = params;
    const key = partKey(kind, part);
    const result = await this.writes.write({
      key,
      ifMatch,
      body,
      validate: (value) => this.validatePart(kind, part, value),
      applyLocally: (value, revision) => this.routing.applyWritten(key, value, revision),
    });
    void reply.header('etag', etagOf(result.revision));
    return this.view();
  }

  /** The same checks a KV change meets, plus consistency with the other part in force. */
  private validatePart(kind: ServiceKind, part: RoutingPart, body: unknown): string {
    if (body === undefined || body === null) {
      throw new RoutingValidationError([{ path: `${kind}.${part}`, message: 'a JSON object is required' }]);
    }
    const value = parsePart(kind, part, JSON.stringify(body));
    const { table } = this.routing.snapshot(kind);
    checkConsistency(
      kind,
      part === 'placement'
        ? { placement: value as Record<string, string>, shards: table.shards }
        : { placement: table.placement, shards: value as Record<string, string[]> },
    );
    return JSON.stringify(value);
  }

  /**
   * Replaces the forward-auth rules (CONTRACT §10), compare-and-set like the other parts.
   * The body is the bare array, as stored under `forward.rules`; `{"rules": [...]}` (the file
   * form's member) is accepted too. A static route, so it wins over `:service_kind/:part`.
   */
  @Put('forward/rules')
  @Requires('platform.routing.write')
  @ApiOperation({ summary: 'Replace the forward-auth rules (compare-and-set on If-Match)' })
  @ApiBody({
    schema: { type: 'array', items: { type: 'object', additionalProperties: true } },
    description: 'the rules, in order (or `{"rules": [...]}`)',
  })
  @ApiOkResponse({ standardSchema: routingViewSchema, headers: ETAG })
  async writeForwardRules(
    @Headers('if-match') ifMatch: string | undefined,
    @Body() body: unknown,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<object> {
    const result = await this.writes.write({
      key: FORWARD_RULES_KEY,
      ifMatch,
      body,
      validate: (value) => {
        const rules = value !== null && typeof value === 'object' && !Array.isArray(value) && 'rules' in value ? value.rules : value;
        return JSON.stringify(validateForwardRules(rules));
      },
      applyLocally: (value, revision) => this.routing.applyWritten(FORWARD_RULES_KEY, value, revision),
    });
    void reply.header('etag', etagOf(result.revision));
    return this.view();
  }

  private view(): object {
    const kinds: Record<string, object> = {};
    for (const kind of SERVICE_KINDS) kinds[kind] = this.kindView(kind);
    return {
      source: this.routing.source,
      bucket: this.routing.source === 'kv' ? this.config.ROUTING_KV_BUCKET : null,
      loaded: this.routing.isLoaded,
      service_kinds: kinds,
      forward: this.forwardView(),
    };
  }

  private forwardView(): object {
    const snapshot = this.routing.forwardRules();
    const rejection = this.routing.lastForwardRejection();
    return {
      revision: snapshot.revision,
      applied_at: snapshot.appliedAt?.toISOString() ?? null,
      rules: snapshot.rules,
      last_rejection:
        rejection === undefined ? null : { at: rejection.at.toISOString(), revision: rejection.revision, errors: rejection.problems },
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
