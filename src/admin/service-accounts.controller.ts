import { ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Body, Controller, Delete, Get, Header, HttpCode, Param, Post, Query, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { Requires } from '../common/auth-declaration';
import { TENANT_ID_PATTERN } from '../authz/request-authorizer.service';
import { pageQuery, pageSchema, type Page, type PageQuery } from '../common/pagination';
import { ZodValidationPipe } from '../common/zod-validation.pipe';
import { adminScope } from '../authz/admin-scope';
import {
  serviceAccountSchema,
  serviceAccountWithSecretSchema,
  ServiceAccountsService,
  type ServiceAccountView,
  type ServiceAccountWithSecret,
} from './service-accounts.service';

const createBody = z.object({
  name: z.string().trim().min(1).max(200),
  tenant_id: z.string().regex(TENANT_ID_PATTERN, 'must be a tenant id').optional(),
});

@ApiTags('admin-service-accounts')
@Controller('admin/service-accounts')
export class ServiceAccountsController {
  constructor(private readonly accounts: ServiceAccountsService) {}

  @Requires('iam.service_accounts.write', { tenant: 'optional' })
  @Get()
  @ApiOkResponse({ standardSchema: pageSchema(serviceAccountSchema) })
  @ApiOperation({ summary: 'List service accounts' })
  list(
    @Query({ schema: pageQuery, pipes: [new ZodValidationPipe(pageQuery)] }) query: PageQuery,
    @Req() request: FastifyRequest,
  ): Promise<Page<ServiceAccountView>> {
    return this.accounts.list(adminScope(request), query.limit, query.cursor);
  }

  @Requires('iam.service_accounts.write', { tenant: 'optional' })
  @Post()
  // carries a token, code or secret: no cache may keep it (CONTRACT §4)
  @Header('cache-control', 'no-store')
  @HttpCode(201)
  @ApiCreatedResponse({ standardSchema: serviceAccountWithSecretSchema })
  @ApiOperation({ summary: 'Create a service account; answers its secret once' })
  create(
    @Body({ schema: createBody, pipes: [new ZodValidationPipe(createBody)] }) body: z.infer<typeof createBody>,
    @Req() request: FastifyRequest,
  ): Promise<ServiceAccountWithSecret> {
    return this.accounts.create(adminScope(request), { name: body.name, tenantId: body.tenant_id });
  }

  @Requires('iam.service_accounts.write', { tenant: 'optional' })
  @Post(':id/rotate-secret')
  // carries a token, code or secret: no cache may keep it (CONTRACT §4)
  @Header('cache-control', 'no-store')
  @HttpCode(200)
  @ApiOkResponse({ standardSchema: serviceAccountWithSecretSchema })
  @ApiOperation({ summary: 'Rotate a service account’s secret (the old one works 10 more minutes)' })
  rotate(@Param('id') id: string, @Req() request: FastifyRequest): Promise<ServiceAccountWithSecret> {
    return this.accounts.rotateSecret(adminScope(request), id);
  }

  @Requires('iam.service_accounts.write', { tenant: 'optional' })
  @Delete(':id')
  @HttpCode(204)
  @ApiOperation({ summary: 'Delete a service account' })
  @ApiNoContentResponse({ description: 'deleted' })
  async delete(@Param('id') id: string, @Req() request: FastifyRequest): Promise<void> {
    await this.accounts.delete(adminScope(request), id);
  }
}
