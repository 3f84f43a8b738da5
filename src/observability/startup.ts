/**
 * What the process is still waiting for while it starts (the database, NATS), so the early
 * listener can say so on /health and /ready before the application exists (CONTRACT §8).
 * A module-level record on purpose: it is written during module construction and read by a
 * listener that is up before Nest is.
 */
const waiting = new Set<string>();

export const startup = {
  /** `name` (e.g. "database", "nats") is being waited for. */
  waitFor(name: string): void {
    waiting.add(name);
  },
  done(name: string): void {
    waiting.delete(name);
  },
  /** What start-up waits for right now, in the order it began waiting. */
  waitingFor(): string[] {
    return [...waiting];
  },
};
