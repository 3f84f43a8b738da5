import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { LOGGER } from '../observability/logger';
import { MetricsService } from '../observability/metrics.service';
import { PRUNED_TABLES, RetentionRepository, type PruneResult } from './retention.repository';

/**
 * Deletes rows that can no longer be used (expired, revoked or spent sessions, refresh tokens,
 * one-time tokens, OIDC states, limiter counters) once RETENTION_PERIOD has passed since, every
 * RETENTION_INTERVAL on each replica; an advisory lock makes the other replicas skip that round.
 */
@Injectable()
export class RetentionService implements OnApplicationBootstrap, OnApplicationShutdown {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;

  constructor(
    private readonly repository: RetentionRepository,
    private readonly metrics: MetricsService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onApplicationBootstrap(): void {
    if (this.config.RETENTION_INTERVAL === 0) return;
    this.timer = setInterval(() => void this.runInBackground(), this.config.RETENTION_INTERVAL * 1000);
    this.timer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }

  /** One round now; `null` when another replica is pruning. Used by the job and by `cli prune`. */
  async pruneOnce(now = new Date()): Promise<PruneResult> {
    const retentionMs = this.config.RETENTION_PERIOD * 1000;
    // a counter is live for its whole window, whatever the retention period says
    const counterAgeMs = Math.max(retentionMs, this.config.AUTH_WINDOW * 1000);
    const result = await this.repository.prune({
      before: new Date(now.getTime() - retentionMs),
      countersBefore: new Date(now.getTime() - counterAgeMs),
    });
    if (result === null) {
      this.metrics.retentionRuns.inc({ outcome: 'skipped' });
      return null;
    }
    for (const table of PRUNED_TABLES) this.metrics.retentionPrunedRows.inc({ table }, result[table]);
    this.metrics.retentionRuns.inc({ outcome: 'ok' });
    return result;
  }

  private async runInBackground(): Promise<void> {
    if (this.running !== undefined) return;
    this.running = this.pruneOnce();
    try {
      const result = await this.running;
      if (result !== null) this.logger.info({ pruned: result }, 'retention: pruned expired rows');
    } catch (error) {
      this.metrics.retentionRuns.inc({ outcome: 'failed' });
      this.logger.warn({ err: error }, 'retention: prune failed; next round retries');
    } finally {
      this.running = undefined;
    }
  }
}
