import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DEADLINE_CHECK_MS, DeadlineWatch, type Expiring } from '../../src/proxy/deadline-watch';

describe('DeadlineWatch', () => {
  let clock = 0;
  const expired: string[] = [];
  const item = (name: string, deadline: number): Expiring => ({ deadline, watchSlot: -1, expire: () => expired.push(name) });

  beforeEach(() => {
    vi.useFakeTimers();
    clock = 0;
    expired.length = 0;
  });
  afterEach(() => vi.useRealTimers());

  const advance = (ms: number) => {
    clock += ms;
    vi.advanceTimersByTime(ms);
  };

  it('expires each passed deadline once, at most one check late, and never a removed one', () => {
    const watch = new DeadlineWatch(() => clock);
    const [a, b, c, d] = [item('a', 10), item('b', 50), item('c', 30), item('d', 200)];
    for (const one of [a, b, c, d]) watch.add(one);
    watch.add(a); // twice: still once
    expect(watch.size).toBe(4);
    watch.delete(b);
    watch.delete(b); // not watched any more: nothing
    expect(watch.size).toBe(3);
    advance(DEADLINE_CHECK_MS);
    expect(expired).toEqual(['a']);
    advance(DEADLINE_CHECK_MS);
    expect(expired).toEqual(['a', 'c']);
    advance(DEADLINE_CHECK_MS * 5);
    expect(expired).toEqual(['a', 'c']);
    expect(watch.size).toBe(1);
    advance(DEADLINE_CHECK_MS * 3);
    expect(expired).toEqual(['a', 'c', 'd']);
    expect(watch.size).toBe(0);
    expect([a, b, c, d].map((one) => one.watchSlot)).toEqual([-1, -1, -1, -1]);
  });

  it('expires every one of many that pass in the same check (removal moves the last into the hole)', () => {
    const watch = new DeadlineWatch(() => clock);
    const many = Array.from({ length: 100 }, (_, i) => item(`n${i}`, i % 2 === 0 ? 5 : 1000));
    for (const one of many) watch.add(one);
    for (const one of many.filter((_, i) => i % 10 === 1)) watch.delete(one);
    advance(DEADLINE_CHECK_MS);
    expect([...expired].sort()).toEqual(
      many
        .filter((_, i) => i % 2 === 0)
        .map((one) => `n${many.indexOf(one)}`)
        .sort(),
    );
    expect(watch.size).toBe(40);
  });

  it('stops its timer when nothing waits and starts it again for the next', () => {
    const watch = new DeadlineWatch(() => clock);
    watch.add(item('a', 5));
    advance(DEADLINE_CHECK_MS);
    expect(vi.getTimerCount()).toBe(0);
    watch.add(item('b', clock + 5));
    expect(vi.getTimerCount()).toBe(1);
    advance(DEADLINE_CHECK_MS);
    expect(expired).toEqual(['a', 'b']);
  });

  it('leaves alone what another watch holds', () => {
    const one = new DeadlineWatch(() => clock);
    const other = new DeadlineWatch(() => clock);
    const a = item('a', 10);
    const b = item('b', 10);
    one.add(a);
    other.add(b);
    one.delete(b); // b sits in slot 0 of the other watch
    expect([one.size, other.size]).toEqual([1, 1]);
    advance(DEADLINE_CHECK_MS);
    expect(expired.sort()).toEqual(['a', 'b']);
  });
});
