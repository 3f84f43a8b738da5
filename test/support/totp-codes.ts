import { createHmac } from 'node:crypto';

/**
 * RFC 6238 computed here with node:crypto alone, independent of otplib (which the service
 * uses), so the tests check the service against the standard rather than against itself.
 */
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

export function base32Decode(text: string): Buffer {
  const clean = text.replace(/=+$/, '').toUpperCase();
  let bits = 0;
  let value = 0;
  const out: number[] = [];
  for (const char of clean) {
    const index = BASE32.indexOf(char);
    if (index === -1) throw new Error(`not base32: ${char}`);
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** HOTP(K, T) per RFC 4226 §5.3 with T the RFC 6238 time step. */
export function totpCode(key: Buffer | string, step: number, digits = 6, algorithm: 'sha1' | 'sha256' | 'sha512' = 'sha1'): string {
  const secret = typeof key === 'string' ? base32Decode(key) : key;
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac(algorithm, secret).update(counter).digest();
  const offset = mac[mac.length - 1]! & 0x0f;
  const binary = (mac.readUInt32BE(offset) & 0x7fffffff) % 10 ** digits;
  return String(binary).padStart(digits, '0');
}

export function currentStep(): number {
  return Math.floor(Date.now() / 30_000);
}

/**
 * The current time step, waiting (by polling, at most ~3 s) when the next step boundary is
 * under 3 s away, so a code computed for a step relative to "now" is still in the server's
 * ±1 window when it arrives.
 */
export async function settledStep(): Promise<number> {
  const deadline = Date.now() + 5000;
  while (Date.now() % 30_000 > 27_000) {
    if (Date.now() > deadline) throw new Error('clock did not advance');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return currentStep();
}
