import { ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { Requires } from '../common/auth-declaration';
import { TENANT_ID_PATTERN } from '../authz/request-authorizer.service';
import { pageQuery, pageSchema, type Page } from '../common/pagination';
import { ZodValidationPipe } from '../common/zod-validation.pipe';
import { adminScope } from '../authz/admin-scope';
import { assignmentSchema, AssignmentsService, type AssignmentView } from './assignments.service';

const listQuery = pageQuery.extend({ principal_id: z.string().max(100).optional(), tenant_id: z.string().max(63).optional() });
const createBody = z.object({
  principal_id: z.string().min(1).max(100),
  tenant_id: z.string().regex(TENANT_ID_PATTERN, 'must be a tenant id').nullable(),
  role_id: z.string().min(1).max(100),
});

@ApiTags('admin-assignments')
@Controller('admin/assignments')
export class AssignmentsController {
  constructor(private readonly assignments: AssignmentsService) {}

  @Requires('iam.assignments.read', { tenant: 'optional' })
  @Get()
  @ApiOkResponse({ standardSchema: pageSchema(assignmentSchema) })
  @ApiOperation({ summary: 'List role assignments' })
  list(
    @Query({ schema: listQuery, pipes: [new ZodValidationPipe(listQuery)] }) query: z.infer<typeof listQuery>,
    @Req() request: FastifyRequest,
  ): Promise<Page<AssignmentView>> {
    return this.assignments.list(
      adminScope(request),
      { principalId: query.principal_id, tenantId: query.tenant_id },
      query.limit,
      query.cursor,
    );
  }

  @Requires('iam.assignments.write', { tenant: 'optional' })
  @Post()
  @HttpCode(201)
  @ApiCreatedResponse({ standardSchema: assignmentSchema })
  @ApiOperation({ summary: 'Assign a role to a principal, in a tenant or at platform scope' })
  create(
    @Body({ schema: createBody, pipes: [new ZodValidationPipe(createBody)] }) body: z.infer<typeof createBody>,
    @Req() request: FastifyRequest,
  ): Promise<AssignmentView> {
    return this.assignments.create(adminScope(request), { principalId: body.principal_id, tenantId: body.tenant_id, roleId: body.role_id });
  }

  @Requires('iam.assignments.write', { tenant: 'optional' })
  @Delete(':id')
  @HttpCode(204)
  @ApiOperation({ summary: 'Remove an assignment' })
  @ApiNoContentResponse({ description: 'removed' })
  async delete(@Param('id') id: string, @Req() request: FastifyRequest): Promise<void> {
    await this.assignments.delete(adminScope(request), id);
  }
}
