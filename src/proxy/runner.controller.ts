import { ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '@nestjs/swagger';
import { All, Controller, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Requires } from '../common/auth-declaration';
import { LimitedAs } from '../limits/limited-as.decorator';
import { HttpUpstreamClient } from './http-upstream.client';
import { StreamedBody } from './streamed-body';
import { relayUpstreamResponse } from './http-relay';
import { runnerUpstreamPath } from './runner-path';

const PREFIX = '/admin/runner';

/**
 * `/admin/runner/*` → the runner shard: method, the path after the prefix, query and body
 * pass through. The routing key is x-tenant-id when given, else the default placement.
 */
@ApiTags('proxy')
@Controller('admin/runner')
export class RunnerController {
  constructor(private readonly upstreams: HttpUpstreamClient) {}

  @All('*')
  @Requires('runner.admin', { tenant: 'optional', policy: true })
  @LimitedAs('runner')
  @ApiParam({ name: 'path', description: 'the rest of the path below /admin/runner (may contain `/`)', type: String })
  @ApiOperation({ summary: 'Pass a call through to the runner shard (method, path below /admin/runner, query and body)' })
  @ApiOkResponse({ schema: {}, description: 'the upstream’s answer (status, headers and body) relayed as it is' })
  async passthrough(@Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const started = performance.now();
    // refused before any upstream contact: a dot segment or "//host" must not reach the runner as written
    const path = runnerUpstreamPath(request.url.slice(PREFIX.length));
    const response = await this.upstreams.send({
      kind: 'runner',
      tenantId: request.ctx.tenantId,
      principal: request.principal!,
      context: request.ctx,
      method: request.method,
      path,
      inboundHeaders: request.headers,
      body: request.body instanceof StreamedBody ? request.body : undefined,
    });
    relayUpstreamResponse(request, reply, response, started);
  }
}
