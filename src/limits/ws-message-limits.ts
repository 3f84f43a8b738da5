import { Inject, Injectable } from '@nestjs/common';
import type { Rate } from '../config/config-values';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { MetricsService } from '../observability/metrics.service';

/** One subscription's message budget: N messages per period, smoothly, with a burst of N. */
export class MessageRate {
  private tokens: number;
  private at = Date.now();

  constructor(private readonly rate: Rate) {
    this.tokens = rate.limit;
  }

  /** Counts one client message; false when the client sends faster than the rate. */
  take(now = Date.now()): boolean {
    this.tokens = Math.min(this.rate.limit, this.tokens + ((now - this.at) * this.rate.limit) / this.rate.periodMs);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/**
 * WS_MESSAGE_RATE_LIMIT per subscription (CONTRACT §9): beside the throttler, which knows
 * requests, not messages on an open socket. A client above it is closed with 1008.
 */
@Injectable()
export class WsMessageLimits {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly metrics: MetricsService,
  ) {}

  /** A fresh budget for a new subscription, or undefined when the limit is off (`0`). */
  forConnection(): MessageRate | undefined {
    return this.config.WS_MESSAGE_RATE_LIMIT.limit === 0 ? undefined : new MessageRate(this.config.WS_MESSAGE_RATE_LIMIT);
  }

  refused(): void {
    this.metrics.rateLimited.inc({ scope: 'ws_message', route_class: 'subscribe' });
  }
}
