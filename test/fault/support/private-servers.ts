import fs from 'node:fs';
import { privateNatsAvailable } from './private-nats';
import { privatePostgresAvailable } from './private-postgres';

/**
 * Whether a fault suite can start the private servers it needs (PostgreSQL 15 binaries and root
 * for a private PostgreSQL, /usr/sbin/nats-server for a private NATS, openssl for certificates).
 * A suite that cannot skips with the reason printed, except under REQUIRE_SERVICES=1 (CI), where
 * the run fails: CI installs and runs as root, so a missing tool there is a broken machine.
 */
export function privateServersAvailable(suite: string, needs: { postgres?: boolean; nats?: boolean; openssl?: boolean }): boolean {
  const missing = [
    needs.postgres === true && !privatePostgresAvailable() ? 'root and the PostgreSQL 15 server binaries (/usr/lib/postgresql/15/bin)' : '',
    needs.nats === true && !privateNatsAvailable() ? '/usr/sbin/nats-server' : '',
    needs.openssl === true && !fs.existsSync('/usr/bin/openssl') ? '/usr/bin/openssl' : '',
  ].filter(Boolean);
  if (missing.length === 0) return true;
  const reason = `${suite}: needs ${missing.join(', ')}`;
  if (process.env.REQUIRE_SERVICES === '1') throw new Error(`${reason} (REQUIRE_SERVICES=1)`);
  console.warn(`skipping ${reason}`);
  return false;
}
