import { ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Put, Query, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { Requires } from '../common/auth-declaration';
import { TENANT_ID_PATTERN } from '../authz/request-authorizer.service';
import { pageQuery, pageSchema, type Page, type PageQuery } from '../common/pagination';
import { ZodValidationPipe } from '../common/zod-validation.pipe';
import { adminScope } from '../authz/admin-scope';
import { RolesService, roleSchema, type RoleView } from './roles.service';

const grant = z.string().regex(/^(\*|[a-z][a-z0-9_.]*(:[A-Za-z0-9_.*?-]+)?)$/, 'must be "right" or "right:resource-glob"');
const grants = z.array(grant).max(200);
const createBody = z.object({
  name: z.string().trim().min(1).max(100),
  tenant_id: z.string().regex(TENANT_ID_PATTERN, 'must be a tenant id').nullable(),
  description: z.string().max(1000).optional(),
  grants,
});
const updateBody = z.object({
  name: z.string().trim().min(1).max(100).optional(),
  description: z.string().max(1000).optional(),
  grants: grants.optional(),
});
const grantsBody = z.object({ grants });

@ApiTags('admin-roles')
@Controller('admin/roles')
export class RolesController {
  constructor(private readonly roles: RolesService) {}

  @Requires('iam.roles.read', { tenant: 'optional' })
  @Get()
  @ApiOkResponse({ standardSchema: pageSchema(roleSchema) })
  @ApiOperation({ summary: 'List roles (built-in, platform and the tenant’s)' })
  list(
    @Query({ schema: pageQuery, pipes: [new ZodValidationPipe(pageQuery)] }) query: PageQuery,
    @Req() request: FastifyRequest,
  ): Promise<Page<RoleView>> {
    return this.roles.list(adminScope(request), query.limit, query.cursor);
  }

  @Requires('iam.roles.write', { tenant: 'optional' })
  @Post()
  @HttpCode(201)
  @ApiCreatedResponse({ standardSchema: roleSchema })
  @ApiOperation({ summary: 'Create a role' })
  create(
    @Body({ schema: createBody, pipes: [new ZodValidationPipe(createBody)] }) body: z.infer<typeof createBody>,
    @Req() request: FastifyRequest,
  ): Promise<RoleView> {
    return this.roles.create(adminScope(request), {
      name: body.name,
      tenantId: body.tenant_id,
      description: body.description,
      grants: body.grants,
    });
  }

  @Requires('iam.roles.read', { tenant: 'optional' })
  @Get(':id')
  @ApiOkResponse({ standardSchema: roleSchema })
  @ApiOperation({ summary: 'Get a role' })
  get(@Param('id') id: string, @Req() request: FastifyRequest): Promise<RoleView> {
    return this.roles.get(adminScope(request), id);
  }

  @Requires('iam.roles.write', { tenant: 'optional' })
  @Patch(':id')
  @ApiOkResponse({ standardSchema: roleSchema })
  @ApiOperation({ summary: 'Rename or describe a role' })
  update(
    @Param('id') id: string,
    @Body({ schema: updateBody, pipes: [new ZodValidationPipe(updateBody)] }) body: z.infer<typeof updateBody>,
    @Req() request: FastifyRequest,
  ): Promise<RoleView> {
    return this.roles.update(adminScope(request), id, body);
  }

  @Requires('iam.roles.write', { tenant: 'optional' })
  @Put(':id/rights')
  @ApiOkResponse({ standardSchema: roleSchema })
  @ApiOperation({ summary: 'Replace a role’s grants' })
  setGrants(
    @Param('id') id: string,
    @Body({ schema: grantsBody, pipes: [new ZodValidationPipe(grantsBody)] }) body: z.infer<typeof grantsBody>,
    @Req() request: FastifyRequest,
  ): Promise<RoleView> {
    return this.roles.update(adminScope(request), id, { grants: body.grants });
  }

  @Requires('iam.roles.write', { tenant: 'optional' })
  @Delete(':id')
  @HttpCode(204)
  @ApiOperation({ summary: 'Delete a role and its assignments' })
  @ApiNoContentResponse({ description: 'deleted' })
  async delete(@Param('id') id: string, @Req() request: FastifyRequest): Promise<void> {
    await this.roles.delete(adminScope(request), id);
  }
}
