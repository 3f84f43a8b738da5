import { Controller, Get, Query, Req, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Requires } from '../common/auth-declaration';
import { ZodValidationPipe } from '../common/zod-validation.pipe';
import { auditExportQuery, auditFilterOf, auditListQuery, type AuditExportQuery, type AuditListQuery } from './audit-query.dto';
import { auditRecordSchema } from './audit-record';
import { AuditTrailService, auditPageSchema, chainVerificationSchema, type AuditPage, type ChainVerification } from './audit-trail.service';

@ApiTags('audit')
@Controller('admin/audit')
export class AuditController {
  constructor(private readonly trail: AuditTrailService) {}

  // With x-tenant-id the guard scopes the caller to that tenant (a tenant admin can only act
  // there); the listing is then confined to it whatever tenant_id filter is asked for.
  @Requires('iam.audit.read', { tenant: 'optional' })
  @Get()
  @ApiOperation({ summary: 'List audit records, newest first (seq descending)' })
  @ApiOkResponse({ standardSchema: auditPageSchema, description: 'one page; `next_cursor` continues below its last seq' })
  list(
    @Query({ schema: auditListQuery, pipes: [new ZodValidationPipe(auditListQuery)] }) query: AuditListQuery,
    @Req() request: FastifyRequest,
  ): Promise<AuditPage> {
    return this.trail.list(auditFilterOf(query, request.ctx.tenantId), { limit: query.limit, cursor: query.cursor });
  }

  @Requires('iam.audit.read', { tenant: 'optional' })
  @Get('export')
  @ApiOperation({ summary: 'Export matching audit records as NDJSON, in chain order (seq ascending), streamed' })
  @ApiProduces('application/x-ndjson')
  @ApiOkResponse({ standardSchema: auditRecordSchema, description: 'one audit record per line' })
  async export(
    @Query({ schema: auditExportQuery, pipes: [new ZodValidationPipe(auditExportQuery)] }) query: AuditExportQuery,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const stream = await this.trail.exportNdjson(auditFilterOf(query, request.ctx.tenantId));
    // sent as the client reads it; Fastify cuts the connection if the stream fails midway
    void reply
      .header('content-type', 'application/x-ndjson; charset=utf-8')
      .header('content-disposition', 'attachment; filename="audit.ndjson"')
      .header('cache-control', 'no-store')
      .send(stream);
  }

  // The chain spans every tenant, so verification is a platform-scope check: the right is
  // required at platform scope and x-tenant-id is not read (a tenant admin gets 403).
  @Requires('iam.audit.read')
  @Get('verify')
  @ApiOperation({ summary: 'Recompute the whole hash chain and report the first record that does not check' })
  @ApiOkResponse({ standardSchema: chainVerificationSchema })
  verify(): Promise<ChainVerification> {
    return this.trail.verify();
  }
}
