import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Controller, Get, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { Public } from '../authz/auth-declaration';
import { MetricsService } from './metrics.service';
import { ReadinessService } from './readiness.service';

const APP_ROOT = path.resolve(__dirname, '..', '..');

interface BuildInfo {
  version: string;
  commit: string;
}

/**
 * Read once at start, never per request: an image carries `build-info.json` (written by the
 * Dockerfile from its APP_VERSION / GIT_SHA build arguments); a checkout falls back to
 * package.json and the commit git reports for it.
 */
function readBuildInfo(): BuildInfo {
  try {
    const info = JSON.parse(fs.readFileSync(path.join(APP_ROOT, 'build-info.json'), 'utf8')) as Partial<BuildInfo>;
    if (typeof info.version === 'string' && typeof info.commit === 'string') return { version: info.version, commit: info.commit };
  } catch {
    // not an image build
  }
  let version = 'unknown';
  let commit = 'unknown';
  try {
    version = (JSON.parse(fs.readFileSync(path.join(APP_ROOT, 'package.json'), 'utf8')) as { version?: string }).version ?? version;
  } catch {
    // keep "unknown"
  }
  try {
    commit = execFileSync('git', ['rev-parse', 'HEAD'], {
      cwd: APP_ROOT,
      encoding: 'utf8',
      timeout: 2000,
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    // no git, or not a checkout
  }
  return { version, commit };
}

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
    const { ready, checks } = await this.readiness.evaluate();
    void reply.header('cache-control', 'no-store');
    if (ready) return { status: 'ready', checks };
    void reply.status(503);
    return { status: 'unready', checks };
  }

  @Public()
  @Get('metrics')
  async scrape(@Res({ passthrough: true }) reply: FastifyReply): Promise<string> {
    void reply.header('content-type', this.metrics.registry.contentType);
    return this.metrics.registry.metrics();
  }
}
