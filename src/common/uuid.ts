import { randomBytes } from 'node:crypto';

/**
 * A version 7 UUID (RFC 9562: 48-bit Unix milliseconds, then random), the kind Prisma's
 * `@default(uuid(7))` makes, for rows whose id the application needs before the insert.
 */
export function uuidv7(): string {
  const bytes = randomBytes(16);
  const ms = Date.now();
  bytes.writeUIntBE(ms, 0, 6);
  bytes[6] = (bytes[6]! & 0x0f) | 0x70;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
