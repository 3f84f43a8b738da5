import { spawnSync } from 'node:child_process';

/**
 * Debian's `prometheus` package provides promtool (.ci/run installs it). Without it a suite
 * skips with the reason printed, except under REQUIRE_SERVICES=1 where CI must have it.
 */
export function promtoolAvailable(): boolean {
  const found = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0;
  if (!found) {
    if (process.env.REQUIRE_SERVICES === '1') throw new Error('promtool missing with REQUIRE_SERVICES=1 (apt-get install -y prometheus)');
    console.warn('skipping: promtool not installed (apt-get install -y prometheus)');
  }
  return found;
}

/** Runs promtool with `args`, feeding `input` on stdin; returns its exit status and output. */
export function promtool(args: string[], input?: string): { status: number | null; output: string } {
  const result = spawnSync('promtool', args, { input, encoding: 'utf8', timeout: 30_000 });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}
