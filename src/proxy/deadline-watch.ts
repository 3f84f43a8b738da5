/** Something that ends when its deadline passes (on the clock of the watch it is added to). */
export interface Expiring {
  readonly deadline: number;
  expire(): void;
  /** The watch's own bookkeeping: where it keeps this one, -1 when it is not watched. Start at -1. */
  watchSlot: number;
}

/**
 * How often the deadlines are checked while any is waiting: a deadline fires at most this late.
 */
export const DEADLINE_CHECK_MS = 20;

/**
 * Deadlines checked together every DEADLINE_CHECK_MS while any is waiting: one interval for all
 * of them instead of a timer set and cleared per call (the HTTP proxy's attempts waiting for
 * their head, the gRPC calls and their upstream attempts; profiled on both paths: the timer
 * lists' bookkeeping, Timeout objects and their closures per call). A deadline is removed as
 * soon as what it guards has ended.
 *
 * The waiting ones are an array, each knowing its slot (removal moves the last into the hole),
 * not a `Set`: a long-lived `Set` churned by one add and one delete per call kept ~2.3 KiB of
 * every proxied call alive through two scavenges, into the old generation (its rehashed tables
 * stay linked to their successors and hold what was waiting when they were replaced), and the
 * full collections that promotion brought made the proxy's whole p99 tail (docs/decisions.md,
 * "Proxy p99: full collections").
 */
export class DeadlineWatch<T extends Expiring = Expiring> {
  private readonly waiting: T[] = [];
  private timer: NodeJS.Timeout | undefined;

  /** `now`: the clock the deadlines are written on (epoch ms, or performance.now()). */
  constructor(private readonly now: () => number) {}

  /** How many are waiting. */
  get size(): number {
    return this.waiting.length;
  }

  add(expiring: T): void {
    const slot = expiring.watchSlot;
    // never `waiting[-1]`: a negative index is a named-property lookup on the array, not an
    // element read (~0.15 µs per call in a micro-benchmark, against ~0.01 µs)
    if (slot >= 0 && this.waiting[slot] === expiring) return;
    expiring.watchSlot = this.waiting.length;
    this.waiting.push(expiring);
    this.timer ??= setInterval(() => this.check(), DEADLINE_CHECK_MS).unref();
  }

  delete(expiring: T): void {
    const slot = expiring.watchSlot;
    if (slot < 0 || this.waiting[slot] !== expiring) return;
    const last = this.waiting.pop()!;
    if (last !== expiring) {
      this.waiting[slot] = last;
      last.watchSlot = slot;
    }
    expiring.watchSlot = -1;
  }

  private check(): void {
    const now = this.now();
    for (let index = 0; index < this.waiting.length;) {
      const expiring = this.waiting[index]!;
      if (now >= expiring.deadline) {
        // the last one moves into this slot: look at the same index again
        this.delete(expiring);
        expiring.expire();
      } else {
        index += 1;
      }
    }
    if (this.waiting.length === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}
