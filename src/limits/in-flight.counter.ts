import { Injectable } from '@nestjs/common';

/**
 * Concurrent proxied calls per client IP on this replica (IP_IN_FLIGHT_LIMIT). The throttler
 * has no notion of calls in flight, so this sits beside it: a count taken at admission and
 * given back when the call ends.
 */
@Injectable()
export class InFlightCounter {
  private readonly counts = new Map<string, number>();

  /** Takes a slot for `ip`; false when it already has `limit` calls in flight. */
  acquire(ip: string, limit: number): boolean {
    const held = this.counts.get(ip) ?? 0;
    if (held >= limit) return false;
    this.counts.set(ip, held + 1);
    return true;
  }

  release(ip: string): void {
    const left = (this.counts.get(ip) ?? 1) - 1;
    if (left <= 0) this.counts.delete(ip);
    else this.counts.set(ip, left);
  }

  held(ip: string): number {
    return this.counts.get(ip) ?? 0;
  }
}
