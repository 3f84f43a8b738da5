import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Body, Controller, HttpCode, Param, Post, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { Requires } from '../common/auth-declaration';
import { LimitedAs } from '../limits/limited-as.decorator';
import { ZodValidationPipe } from '../common/zod-validation.pipe';
import {
  commandBodySchema,
  commandResultSchema,
  toGrpcRequest,
  toJsonResponse,
  upstreamReplyToAppError,
  validateTarget,
  type CommandBody,
  type CommandResult,
} from './command-json';
import { GrpcUpstreamClient } from './grpc-upstream.client';
import { UpstreamGrpcError } from './upstream-failure';

/** HTTP wrapper of `aggregate.gateway.v1.CommandService/SubmitCommand` (CONTRACT §7). */
@ApiTags('proxy')
@Controller('v1/commands')
export class CommandsController {
  constructor(private readonly aggregates: GrpcUpstreamClient) {}

  @Post(':aggregate_type/:aggregate_id')
  @HttpCode(200)
  @Requires('commands.submit', { tenant: 'required', resource: 'aggregate_type', policy: true })
  @LimitedAs('commands')
  @ApiOperation({ summary: 'Submit a command to the tenant’s aggregate shard (gRPC SubmitCommand over HTTP)' })
  @ApiOkResponse({ standardSchema: commandResultSchema })
  async submit(
    @Param('aggregate_type') aggregateType: string,
    @Param('aggregate_id') aggregateId: string,
    @Body({ schema: commandBodySchema, pipes: [new ZodValidationPipe(commandBodySchema)] }) body: CommandBody,
    @Req() request: FastifyRequest,
  ): Promise<CommandResult> {
    validateTarget(aggregateType, aggregateId);
    const started = performance.now();
    try {
      const response = await this.aggregates.submit({
        request: toGrpcRequest(aggregateType, aggregateId, body),
        principal: request.principal!,
        tenantId: request.ctx.tenantId!,
        context: request.ctx,
      });
      return toJsonResponse(response);
    } catch (error) {
      if (error instanceof UpstreamGrpcError) throw upstreamReplyToAppError(error);
      throw error;
    } finally {
      request.ctx.upstream = `${request.ctx.upstream ?? 'aggregate'} in ${(performance.now() - started).toFixed(1)} ms`;
    }
  }
}
