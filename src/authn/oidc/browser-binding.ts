import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { hashToken } from '../../common/opaque-token';

// as long as the state it protects lives
const BINDING_TTL_S = 10 * 60;
const BINDING_VALUE = /^[A-Za-z0-9_-]{43}$/;

/**
 * CONTRACT §4: a Google flow is bound to the browser that started it. `start` and
 * `link/start` set a cookie; the state row keeps the hash of its value; the callback must
 * present it. A link URL or callback URL sent to a victim therefore arrives without the
 * attacker's cookie and is refused (link hijacking, login CSRF).
 */
export class BrowserBinding {
  readonly cookieName: string;
  private readonly secure: boolean;

  constructor(publicUrl: string) {
    this.secure = new URL(publicUrl).protocol === 'https:';
    // __Host- keeps a sibling subdomain from planting or shadowing the cookie (needs Secure + Path=/)
    this.cookieName = this.secure ? '__Host-gh_oidc' : 'gh_oidc';
  }

  /** The browser's current value: a well-formed cookie is reused, so two tabs may sign in at once. */
  valueFor(request: FastifyRequest): string {
    const existing = this.read(request);
    return existing ?? randomBytes(32).toString('base64url');
  }

  read(request: FastifyRequest): string | undefined {
    const header = request.headers.cookie;
    if (header === undefined) return undefined;
    for (const part of header.split(';')) {
      const index = part.indexOf('=');
      if (index === -1) continue;
      if (part.slice(0, index).trim() !== this.cookieName) continue;
      const value = part.slice(index + 1).trim();
      if (BINDING_VALUE.test(value)) return value;
    }
    return undefined;
  }

  set(reply: FastifyReply, value: string): void {
    const attributes = [`${this.cookieName}=${value}`, 'Path=/', `Max-Age=${BINDING_TTL_S}`, 'HttpOnly', 'SameSite=Lax'];
    if (this.secure) attributes.push('Secure');
    void reply.header('set-cookie', attributes.join('; '));
  }

  static hash(value: string): string {
    return hashToken(value);
  }

  /** Constant-time comparison of the stored hash with the presented cookie's. */
  static matches(storedHash: string | undefined, presented: string | undefined): boolean {
    if (storedHash === undefined || presented === undefined) return false;
    const expected = Buffer.from(storedHash);
    const actual = Buffer.from(hashToken(presented));
    return expected.length === actual.length && timingSafeEqual(expected, actual);
  }
}
