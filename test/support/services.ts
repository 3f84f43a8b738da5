import { inject } from 'vitest';

export const PG_ADMIN_URL = process.env.TEST_PG_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
export const NATS_URL = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222';

/**
 * Whether the real servers a suite needs are up (checked once by global-setup.ts, which
 * fails the run instead when REQUIRE_SERVICES=1). Use with `describe.skipIf(!...)`.
 */
export function servicesAvailable(needs: { postgres?: boolean; nats?: boolean }): boolean {
  const missing = (needs.postgres === true && !inject('postgres')) || (needs.nats === true && !inject('nats'));
  if (missing) console.warn('skipping suite: PostgreSQL or NATS unreachable (see the run header)');
  return !missing;
}
