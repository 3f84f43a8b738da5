import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.spec.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // suites boot real servers; two cores here, so keep the fan-out modest
    maxWorkers: 2,
    pool: 'forks',
    reporters: ['default'],
  },
});
