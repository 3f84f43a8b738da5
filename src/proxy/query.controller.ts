import { ApiBody, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Controller, Param, Post, Req, Res, HttpCode } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Requires } from '../common/auth-declaration';
import { LimitedAs } from '../limits/limited-as.decorator';
import { HttpUpstreamClient } from './http-upstream.client';
import { StreamedBody } from './streamed-body';
import { relayUpstreamResponse, queryStringOf } from './http-relay';

/** `POST /v1/query/{view_type}` → the tenant's projection shard; status and body relayed as they are. */
@ApiTags('proxy')
@Controller('v1/query')
export class QueryController {
  constructor(private readonly upstreams: HttpUpstreamClient) {}

  @Post(':view_type')
  @HttpCode(200)
  @Requires('queries.run', { tenant: 'required', resource: 'view_type', policy: true })
  @LimitedAs('query')
  @ApiOperation({ summary: 'Run a query on the tenant’s projection shard' })
  @ApiBody({ schema: { type: 'object', additionalProperties: true }, required: false, description: 'passed to the projection as it is' })
  @ApiOkResponse({ schema: {}, description: 'the upstream’s answer (status, headers and body) relayed as it is' })
  async query(@Param('view_type') viewType: string, @Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const started = performance.now();
    const response = await this.upstreams.send({
      kind: 'projection',
      tenantId: request.ctx.tenantId,
      principal: request.principal!,
      context: request.ctx,
      method: 'POST',
      path: `/v1/query/${encodeURIComponent(viewType)}${queryStringOf(request.url)}`,
      inboundHeaders: request.headers,
      body: request.body instanceof StreamedBody ? request.body : undefined,
    });
    relayUpstreamResponse(request, reply, response, started);
  }
}
