/** Something that ends when its deadline passes (on the clock of the watch it is added to). */
export interface Expiring {
  readonly deadline: number;
  expire(): void;
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
 */
export class DeadlineWatch<T extends Expiring = Expiring> {
  private readonly waiting = new Set<T>();
  private timer: NodeJS.Timeout | undefined;

  /** `now`: the clock the deadlines are written on (epoch ms, or performance.now()). */
  constructor(private readonly now: () => number) {}

  add(expiring: T): void {
    this.waiting.add(expiring);
    this.timer ??= setInterval(() => this.check(), DEADLINE_CHECK_MS).unref();
  }

  delete(expiring: T): void {
    this.waiting.delete(expiring);
  }

  private check(): void {
    const now = this.now();
    for (const expiring of this.waiting) {
      if (now >= expiring.deadline) {
        this.waiting.delete(expiring);
        expiring.expire();
      }
    }
    if (this.waiting.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}
