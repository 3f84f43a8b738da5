import { Inject, Injectable } from '@nestjs/common';
import { AppError } from '../common/app-error';
import { APP_CONFIG, type AppConfig } from '../config/config';
import type { HandshakeRelease, SubscriptionHandshake, SubscriptionHandshakeCheck } from './subscription-handshake-checks';

/** A slot frees when one of the principal's subscriptions closes, which nobody can predict. */
const RETRY_AFTER_SECONDS = '5';

/**
 * At most WS_MAX_CONNECTIONS_PER_PRINCIPAL open subscriptions per principal (CONTRACT §2, §9).
 * Counted at the handshake, so handshakes still waiting for their upstream hold a slot too.
 * The count is this replica's: with N replicas behind a balancer a principal can hold up to N
 * times the cap in the worst case (docs/decisions.md, "WebSocket edge").
 */
@Injectable()
export class SubscriptionConnectionCap implements SubscriptionHandshakeCheck {
  readonly name = 'ws_connections';
  private readonly open = new Map<string, number>();

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  check({ principal }: SubscriptionHandshake): HandshakeRelease {
    const held = this.open.get(principal.id) ?? 0;
    if (held >= this.config.WS_MAX_CONNECTIONS_PER_PRINCIPAL) {
      throw new AppError('rate_limited', {
        detail: `at most ${this.config.WS_MAX_CONNECTIONS_PER_PRINCIPAL} open subscriptions per principal`,
        headers: { 'retry-after': RETRY_AFTER_SECONDS },
        logReason: `ws connection cap: ${held} open subscriptions`,
      });
    }
    this.open.set(principal.id, held + 1);
    return () => {
      const left = (this.open.get(principal.id) ?? 1) - 1;
      if (left <= 0) this.open.delete(principal.id);
      else this.open.set(principal.id, left);
    };
  }
}
