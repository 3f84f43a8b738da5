import { ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { z } from 'zod';
import { Requires } from '../common/auth-declaration';
import { TENANT_ID_PATTERN } from '../authz/request-authorizer.service';
import { pageQuery, pageSchema, type Page, type PageQuery } from '../common/pagination';
import { ZodValidationPipe } from '../common/zod-validation.pipe';
import { TenantsService, tenantSchema, type TenantView } from './tenants.service';

const createBody = z.object({
  id: z.string().regex(TENANT_ID_PATTERN, 'must match ^[a-z0-9][a-z0-9-]{1,62}$'),
  name: z.string().trim().min(1).max(200),
});
const updateBody = z.object({ name: z.string().trim().min(1).max(200).optional() });

/** Tenants are platform objects: every call needs platform.tenants.write at platform scope. */
@ApiTags('admin-tenants')
@Controller('admin/tenants')
export class TenantsController {
  constructor(private readonly tenants: TenantsService) {}

  @Requires('platform.tenants.write')
  @Get()
  @ApiOkResponse({ standardSchema: pageSchema(tenantSchema) })
  @ApiOperation({ summary: 'List tenants' })
  list(@Query({ schema: pageQuery, pipes: [new ZodValidationPipe(pageQuery)] }) query: PageQuery): Promise<Page<TenantView>> {
    return this.tenants.list(query.limit, query.cursor);
  }

  @Requires('platform.tenants.write')
  @Post()
  @HttpCode(201)
  @ApiCreatedResponse({ standardSchema: tenantSchema })
  @ApiOperation({ summary: 'Create a tenant' })
  create(@Body({ schema: createBody, pipes: [new ZodValidationPipe(createBody)] }) body: z.infer<typeof createBody>): Promise<TenantView> {
    return this.tenants.create(body);
  }

  @Requires('platform.tenants.write')
  @Get(':id')
  @ApiOkResponse({ standardSchema: tenantSchema })
  @ApiOperation({ summary: 'Get a tenant' })
  get(@Param('id') id: string): Promise<TenantView> {
    return this.tenants.get(id);
  }

  @Requires('platform.tenants.write')
  @Patch(':id')
  @ApiOkResponse({ standardSchema: tenantSchema })
  @ApiOperation({ summary: 'Rename a tenant' })
  update(
    @Param('id') id: string,
    @Body({ schema: updateBody, pipes: [new ZodValidationPipe(updateBody)] }) body: z.infer<typeof updateBody>,
  ): Promise<TenantView> {
    return this.tenants.update(id, body);
  }

  @Requires('platform.tenants.write')
  @Delete(':id')
  @HttpCode(204)
  @ApiOperation({ summary: 'Delete a tenant with its roles and assignments' })
  @ApiNoContentResponse({ description: 'deleted' })
  async delete(@Param('id') id: string): Promise<void> {
    await this.tenants.delete(id);
  }
}
