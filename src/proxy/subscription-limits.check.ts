import { Injectable } from '@nestjs/common';
import { TrafficLimitGuard } from '../limits/traffic-limit.guard';
import type { SubscriptionHandshake, SubscriptionHandshakeCheck } from './subscription-handshake-checks';

/**
 * CONTRACT §9 at the `/v1/subscribe` handshake (route class `subscribe`): the tenant and
 * principal buckets, and the client IP's in-flight count, which the handshake passes but does
 * not hold (an open subscription is counted by the connection cap, not as a call in flight).
 */
@Injectable()
export class SubscriptionLimitsCheck implements SubscriptionHandshakeCheck {
  readonly name = 'limits';

  constructor(private readonly limits: TrafficLimitGuard) {}

  async check({ principal, tenantId, context }: SubscriptionHandshake): Promise<void> {
    await this.limits.admit({ routeClass: 'subscribe', principalId: principal.id, tenantId, clientIp: context.clientIp }, context);
  }
}
