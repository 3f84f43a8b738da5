import { describe, expect, it, vi } from 'vitest';
import { randomUuid, uuidv7 } from '../../src/common/uuid';

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

describe('uuidv7', () => {
  it('makes version 7 UUIDs whose first 48 bits are the Unix milliseconds, each a new string, interleaved with v4 ids', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i += 1) {
      const before = Date.now();
      const id = uuidv7();
      const after = Date.now();
      randomUuid();
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      const ms = parseInt(id.replace(/-/g, '').slice(0, 12), 16);
      expect(ms).toBeGreaterThanOrEqual(before);
      expect(ms).toBeLessThanOrEqual(after);
      seen.add(id);
    }
    expect(seen.size).toBe(1000);
  });

  it('writes a millisecond count past 2^32 in full (no 32-bit truncation)', () => {
    const spy = vi.spyOn(Date, 'now').mockReturnValue(0xfedcba987654);
    try {
      expect(uuidv7().slice(0, 13)).toBe('fedcba98-7654');
    } finally {
      spy.mockRestore();
    }
  });
});
