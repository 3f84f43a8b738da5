import { Injectable } from '@nestjs/common';
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
 * SEAM for CONTRACT §9 on the decision API (route class `forward`): admits or refuses
 * (AppError `rate_limited` with `Retry-After`) after authorization, before the answer.
 * Admits everything until the limits service (issue 13, branch `limits`) lands; then this
 * class delegates to it and nothing else in src/forward changes.
 */
@Injectable()
export class ForwardLimits {
  // eslint-disable-next-line @typescript-eslint/require-await -- the real limiter is asynchronous
  async admit(input: ForwardAdmissionInput): Promise<ForwardAdmission> {
    void input;
    return { headers: {}, release: () => undefined };
  }
}
