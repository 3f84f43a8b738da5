import { ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Body, Controller, Get, HttpCode, Param, Post, Query, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { Requires } from '../common/auth-declaration';
import { TENANT_ID_PATTERN } from '../authz/request-authorizer.service';
import { pageQuery, pageSchema, type Page, type PageQuery } from '../common/pagination';
import { ZodValidationPipe } from '../common/zod-validation.pipe';
import { SERVICE_KINDS } from '../routing/routing-document';
import { planSchema, RebalancingService, type PlanView } from './rebalancing.service';

const createBody = z.object({
  service_kind: z.enum(SERVICE_KINDS),
  tenant_id: z.string().regex(TENANT_ID_PATTERN, 'must match ^[a-z0-9][a-z0-9-]{1,62}$'),
  target_shard: z.string().min(1).max(128),
});

/** Moving a tenant between shards (CONTRACT §11); platform scope only. */
@ApiTags('admin-rebalancing')
@Controller('admin/rebalancing/plans')
export class RebalancingController {
  constructor(private readonly rebalancing: RebalancingService) {}

  @Requires('platform.rebalancing')
  @Post()
  @HttpCode(201)
  @ApiOperation({ summary: 'Plan moving a tenant to another shard (checks the target’s readiness)' })
  @ApiCreatedResponse({ standardSchema: planSchema })
  create(
    @Req() request: FastifyRequest,
    @Body({ schema: createBody, pipes: [new ZodValidationPipe(createBody)] }) body: z.infer<typeof createBody>,
  ): Promise<PlanView> {
    return this.rebalancing.create(request.principal!, body);
  }

  @Requires('platform.rebalancing')
  @Get()
  @ApiOperation({ summary: 'List rebalancing plans' })
  @ApiOkResponse({ standardSchema: pageSchema(planSchema) })
  list(@Query({ schema: pageQuery, pipes: [new ZodValidationPipe(pageQuery)] }) query: PageQuery): Promise<Page<PlanView>> {
    return this.rebalancing.list(query.limit, query.cursor);
  }

  @Requires('platform.rebalancing')
  @Get(':id')
  @ApiOperation({ summary: 'Get a rebalancing plan' })
  @ApiOkResponse({ standardSchema: planSchema })
  get(@Param('id') id: string): Promise<PlanView> {
    return this.rebalancing.get(id);
  }

  @Requires('platform.rebalancing')
  @Post(':id/apply')
  @HttpCode(200)
  @ApiOperation({ summary: 'Apply a plan: write the new placement (compare-and-set)' })
  @ApiOkResponse({ standardSchema: planSchema })
  apply(@Req() request: FastifyRequest, @Param('id') id: string): Promise<PlanView> {
    return this.rebalancing.apply(request.principal!, id);
  }

  @Requires('platform.rebalancing')
  @Post(':id/rollback')
  @HttpCode(200)
  @ApiOperation({ summary: 'Roll an applied plan back to the previous shard' })
  @ApiOkResponse({ standardSchema: planSchema })
  rollback(@Param('id') id: string): Promise<PlanView> {
    return this.rebalancing.rollback(id);
  }
}
