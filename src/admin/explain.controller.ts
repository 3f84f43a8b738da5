import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Controller, Get, Query, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { Requires } from '../common/auth-declaration';
import { AssignmentRepository } from '../authz/assignment.repository';
import { decide } from '../authz/decision-engine';
import { TENANT_ID_PATTERN } from '../authz/request-authorizer.service';
import { ZodValidationPipe } from '../common/zod-validation.pipe';
import { PrismaService } from '../database/prisma.service';
import { adminScope } from '../authz/admin-scope';
import { PrincipalVisibility } from '../authz/principal-visibility';
import { AppError } from '../common/app-error';

const explainQuery = z.object({
  principal_id: z.string().min(1).max(100),
  tenant_id: z.string().regex(TENANT_ID_PATTERN, 'must be a tenant id').optional(),
  right: z.string().min(1).max(200),
  resource: z.string().max(200).optional(),
});

const explanationSchema = z
  .object({
    decision: z.enum(['allow', 'deny']),
    reason: z.string(),
    matched: z.array(z.object({ assignment_id: z.string(), role: z.string(), grant: z.string() })).describe('the grants that allow it'),
  })
  .meta({ id: 'AuthzExplanation' });

/** Why a principal is or is not allowed: the same decision the guard makes, with the matching grants. */
@ApiTags('admin-authz')
@Controller('admin/authz')
export class ExplainController {
  constructor(
    private readonly prisma: PrismaService,
    private readonly assignments: AssignmentRepository,
    private readonly visibility: PrincipalVisibility,
  ) {}

  @Requires('iam.assignments.read', { tenant: 'optional' })
  @Get('explain')
  @ApiOperation({ summary: 'Explain whether a principal holds a right, and through which grants' })
  @ApiOkResponse({ standardSchema: explanationSchema })
  async explain(
    @Query({ schema: explainQuery, pipes: [new ZodValidationPipe(explainQuery)] }) query: z.infer<typeof explainQuery>,
    @Req() request: FastifyRequest,
  ): Promise<z.infer<typeof explanationSchema>> {
    const scope = adminScope(request);
    await this.visibility.requireVisible(this.prisma, scope, query.principal_id);
    if (scope.tenantId !== undefined && query.tenant_id !== scope.tenantId) throw new AppError('not_found');
    const decision = decide({
      principalId: query.principal_id,
      tenantId: query.tenant_id,
      right: query.right,
      resource: query.resource,
      assignments: await this.assignments.grantSourcesOf(this.prisma, query.principal_id),
    });
    return { decision: decision.decision, reason: decision.reason, matched: decision.matched };
  }
}
