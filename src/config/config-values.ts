import net from 'node:net';
import { z } from 'zod';

/** Shapes of configuration values that need more than a type: each refusal says what was expected. */

const splitList = (value: string): string[] =>
  value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);

// Names proxy-addr (Fastify's trustProxy) understands besides addresses and CIDRs.
const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

function isProxyAddress(entry: string): boolean {
  if (PROXY_NAMES.has(entry)) return true;
  const [address, prefix, ...rest] = entry.split('/');
  if (rest.length > 0 || address === undefined) return false;
  const family = net.isIP(address);
  if (family === 0) return false;
  if (prefix === undefined) return true;
  if (net.isIP(prefix) === family) return true; // address/netmask
  if (!/^\d{1,3}$/.test(prefix)) return false;
  return Number(prefix) <= (family === 4 ? 32 : 128);
}

/**
 * TRUST_PROXY: `false` (default), `true` (every hop), or addresses/CIDRs (and
 * proxy-addr's `loopback`, `linklocal`, `uniquelocal`). Anything else is refused here: Fastify
 * would otherwise fail later with a message that names no variable.
 */
export const trustProxyValue = z
  .string()
  .default('false')
  .transform((value, context): boolean | string[] => {
    const lowered = value.trim().toLowerCase();
    if (lowered === 'false' || lowered === '' || lowered === '0') return false;
    if (lowered === 'true' || lowered === '1') return true;
    const entries = splitList(value);
    const bad = entries.find((entry) => !isProxyAddress(entry));
    if (bad !== undefined) {
      context.addIssue({
        code: 'custom',
        message: `"${bad.slice(0, 64)}" is not an IP address or CIDR (expected false, true, or a comma-separated list of addresses/CIDRs)`,
      });
      return z.NEVER;
    }
    return entries;
  });

/** CORS_ORIGINS: exact origins (`https://app.example.com`, no path, no trailing slash, no wildcard). */
export const originList = z
  .string()
  .default('')
  .transform((value, context): string[] => {
    const entries = splitList(value);
    for (const entry of entries) {
      let origin: string | undefined;
      try {
        const url = new URL(entry);
        if (url.protocol === 'http:' || url.protocol === 'https:') origin = url.origin;
      } catch {
        // reported below
      }
      if (origin !== entry) {
        context.addIssue({
          code: 'custom',
          message: `"${entry.slice(0, 128)}" is not an origin (expected scheme://host[:port], e.g. https://admin.example.com; no path, no wildcard)`,
        });
        return z.NEVER;
      }
    }
    return entries;
  });

/** A comma-separated list of URLs with one of `protocols` (OIDC_RETURN_TO_ALLOWLIST's prefixes). */
export const urlList = (protocols: string[]) =>
  z
    .string()
    .default('')
    .transform((value, context): string[] => {
      const entries = splitList(value);
      const bad = entries.find((entry) => !hasProtocol(entry, protocols));
      if (bad !== undefined) {
        context.addIssue({ code: 'custom', message: `"${redactUserinfo(bad)}" is not a URL (${protocols.join(' or ')})` });
        return z.NEVER;
      }
      return entries;
    });

/** NATS_URL: comma-separated servers, each a nats/tls/ws/wss URL or a bare host:port as the client accepts. */
export const natsServers = z
  .string()
  .optional()
  .transform((value) => (value === undefined || value.trim() === '' ? undefined : value.trim()))
  .superRefine((value, context) => {
    if (value === undefined) return;
    const bad = splitList(value).find(
      (entry) => !hasProtocol(entry, ['nats:', 'tls:', 'ws:', 'wss:']) && !/^[A-Za-z0-9.-]+:\d{1,5}$/.test(entry),
    );
    if (bad !== undefined) {
      context.addIssue({
        code: 'custom',
        message: `"${redactUserinfo(bad)}" is not a NATS server (nats://host:port, tls://host:port or host:port)`,
      });
    }
  });

function hasProtocol(value: string, protocols: string[]): boolean {
  try {
    return protocols.includes(new URL(value).protocol);
  } catch {
    return false;
  }
}

/** Never echo a password back in an error line. */
function redactUserinfo(value: string): string {
  return value.replace(/\/\/[^@/]*@/, '//***@').slice(0, 128);
}

/** A rate of §9: `N/<duration>` (`100/60s`, `20/1m`, `5/1s`, `1/500ms`); `limit` 0 means disabled. */
export interface Rate {
  limit: number;
  periodMs: number;
}

const DURATION_UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export function parseRate(value: string): Rate | undefined {
  const trimmed = value.trim();
  if (trimmed === '0') return { limit: 0, periodMs: 1000 };
  const match = /^(\d{1,9})\/(\d{1,9})?(ms|s|m|h)$/.exec(trimmed);
  if (match === null) return undefined;
  const limit = Number(match[1]);
  const periodMs = Number(match[2] ?? '1') * DURATION_UNIT_MS[match[3]!]!;
  if (periodMs <= 0 || periodMs > 86_400_000) return undefined;
  return { limit, periodMs };
}

/** TENANT_RATE_LIMIT and friends: `N/<duration>`, or `0` to disable the scope. */
export const rateValue = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((value, context): Rate => {
      const rate = parseRate(value);
      if (rate === undefined) {
        context.addIssue({
          code: 'custom',
          message: `"${value.slice(0, 32)}" is not a rate (expected N/<duration> such as 100/60s, 20/1m, 5/1s, or 0)`,
        });
        return z.NEVER;
      }
      return rate;
    });
