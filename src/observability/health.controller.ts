import { ApiOkResponse, ApiOperation, ApiProduces, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';
import { Controller, Get, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { AppError } from '../common/app-error';
import { Public } from '../common/auth-declaration';
import { readBuildInfo } from './build-info';
import { MetricsService } from './metrics.service';
import { ReadinessService } from './readiness.service';
import { z } from 'zod';

const healthSchema = z
  .object({ status: z.literal('ok'), version: z.string(), commit: z.string(), node: z.string().describe('the running Node.js version') })
  .meta({ id: 'Health' });
const readinessSchema = z
  .object({
    status: z.enum(['ready', 'degraded', 'unready']),
    checks: z.record(z.string(), z.string()).describe('each dependency and its state'),
  })
  .meta({ id: 'Readiness' });

@ApiTags('operations')
@Controller()
export class HealthController {
  private readonly build = readBuildInfo();

  constructor(
    private readonly readiness: ReadinessService,
    private readonly metrics: MetricsService,
  ) {}

  /** Liveness: 200 while the process lives, with the running build. */
  @Public()
  @Get('health')
  @ApiOperation({ summary: 'Liveness, with the running build and Node version' })
  @ApiOkResponse({ standardSchema: healthSchema })
  health(): z.infer<typeof healthSchema> {
    return { status: 'ok', ...this.build, node: process.version };
  }

  @Public()
  @Get('ready')
  @ApiOperation({ summary: 'Readiness: 200 ready or degraded, 503 while a required dependency is down or during shutdown' })
  @ApiOkResponse({ standardSchema: readinessSchema })
  @ApiServiceUnavailableResponse({ standardSchema: readinessSchema, description: 'not ready' })
  async ready(@Res({ passthrough: true }) reply: FastifyReply): Promise<z.infer<typeof readinessSchema>> {
    const { httpStatus, body } = await this.readiness.evaluate();
    void reply.header('cache-control', 'no-store');
    void reply.status(httpStatus);
    return body;
  }

  @Public()
  @Get('metrics')
  @ApiOperation({ summary: 'Prometheus metrics (text exposition format); keep off the public edge' })
  @ApiProduces('text/plain')
  @ApiOkResponse({ schema: { type: 'string' }, description: 'Prometheus text format 0.0.4' })
  async scrape(@Res({ passthrough: true }) reply: FastifyReply): Promise<string> {
    void reply.header('content-type', this.metrics.registry.contentType);
    try {
      return await this.metrics.replica.metrics();
    } catch (error) {
      throw new AppError('unavailable', { logReason: `metrics: ${error instanceof Error ? error.message : String(error)}` });
    }
  }
}
