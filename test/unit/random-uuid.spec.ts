import { describe, expect, it } from 'vitest';
import { randomUuid } from '../../src/common/uuid';

describe('randomUuid', () => {
  it('makes version 4 UUIDs in the canonical form, each a new string', () => {
    const seen = new Set<string>();
    // more than one pool of random bytes (256 ids), so a refill is crossed
    for (let i = 0; i < 1000; i += 1) {
      const id = randomUuid();
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      seen.add(id);
    }
    expect(seen.size).toBe(1000);
  });

  it('does not hand out the buffer it writes into: an id keeps its value after the next ones', () => {
    const first = randomUuid();
    const copy = `${first}`;
    randomUuid();
    expect(first).toBe(copy);
  });
});
