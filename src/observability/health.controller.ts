import { Controller, Get, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { AppError } from '../common/app-error';
import { Public } from '../common/auth-declaration';
import { readBuildInfo, type BuildInfo } from './build-info';
import { MetricsService } from './metrics.service';
import { ReadinessService } from './readiness.service';

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
  health(): { status: 'ok'; node: string } & BuildInfo {
    return { status: 'ok', ...this.build, node: process.version };
  }

  @Public()
  @Get('ready')
  async ready(@Res({ passthrough: true }) reply: FastifyReply): Promise<object> {
    const { httpStatus, body } = await this.readiness.evaluate();
    void reply.header('cache-control', 'no-store');
    void reply.status(httpStatus);
    return body;
  }

  @Public()
  @Get('metrics')
  async scrape(@Res({ passthrough: true }) reply: FastifyReply): Promise<string> {
    void reply.header('content-type', this.metrics.registry.contentType);
    try {
      return await this.metrics.replica.metrics();
    } catch (error) {
      throw new AppError('unavailable', { logReason: `metrics: ${error instanceof Error ? error.message : String(error)}` });
    }
  }
}
