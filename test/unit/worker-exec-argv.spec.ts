import { describe, expect, it } from 'vitest';
import { workerExecArgv } from '../../src/workers';

const MiB = 1048576;
const flags = ['--max-semi-space-size=8', '--heap-growing-percent=300'];

describe('workerExecArgv', () => {
  it('caps each worker at its share of half the container limit', () => {
    expect(workerExecArgv(flags, 2, 512 * MiB, 24_000 * MiB)).toEqual([...flags, '--max-old-space-size=128']);
    expect(workerExecArgv(flags, 4, 2048 * MiB, 24_000 * MiB)).toEqual([...flags, '--max-old-space-size=256']);
  });

  it('never caps below what holds the live data', () => {
    expect(workerExecArgv(flags, 8, 512 * MiB, 24_000 * MiB)).toEqual([...flags, '--max-old-space-size=96']);
  });

  it('leaves the flags alone without a limit, with one worker, or with an explicit cap', () => {
    // no cgroup limit: Node reports a huge number or 0
    expect(workerExecArgv(flags, 2, 2 ** 64, 24_000 * MiB)).toBe(flags);
    expect(workerExecArgv(flags, 2, 0, 24_000 * MiB)).toBe(flags);
    expect(workerExecArgv(flags, 1, 512 * MiB, 24_000 * MiB)).toBe(flags);
    const explicit = [...flags, '--max-old-space-size=300'];
    expect(workerExecArgv(explicit, 2, 512 * MiB, 24_000 * MiB)).toBe(explicit);
  });
});
