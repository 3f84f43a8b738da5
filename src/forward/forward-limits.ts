import { Injectable } from '@nestjs/common';
import type { RequestContext } from '../common/request-context';
import { TrafficLimitGuard } from '../limits/traffic-limit.guard';
import type { Principal } from '../session/principal';

export interface ForwardAdmissionInput {
  /** absent on public rules (only the client-IP scope applies) */
  principal?: Principal;
  /** absent on rules with `tenant: "none"` (the tenant scope is skipped, CONTRACT §9) */
  tenantId?: string;
  clientIp: string;
}

export interface ForwardAdmission {
  /** headers for the 200 answer (IETF `RateLimit`) */
  headers: Record<string, string>;
  /** ends the decision's in-flight count */
  release(): void;
}

/**
 * CONTRACT §9 on the decision API (route class `forward`): admits or refuses (AppError
 * `rate_limited` with `Retry-After`) after authorization, before the answer, with the same
 * limiter as the built-in proxies.
 */
@Injectable()
export class ForwardLimits {
  constructor(private readonly limits: TrafficLimitGuard) {}

  /** Every check is in this process's memory, so no promise: a refusal throws. */
  admit(input: ForwardAdmissionInput, context: RequestContext | undefined): ForwardAdmission {
    return this.limits.admitNow(
      { routeClass: 'forward', principalId: input.principal?.id, tenantId: input.tenantId, clientIp: input.clientIp, holdsSlot: true },
      context,
    );
  }
}
