import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { SignJWT } from 'jose';
import { APP_CONFIG, type AppConfig } from '../config/config';
import type { ServiceKind } from '../routing/routing-document';
import type { Principal } from '../session/principal';
import { SIGNING_ALGORITHM, SigningKeyService } from '../session/signing-key.service';

/** Lifetime of the token Gatehouse presents to upstreams (CONTRACT §7). */
export const INTERNAL_TOKEN_TTL_S = 60;
/** A cached token is reused while it has at least this long to live. */
const REUSE_WHILE_REMAINING_S = 30;
const CACHE_LIMIT = 10_000;

interface Cached {
  token: string;
  exp: number;
}

/** A cached token with what it was minted for, kept per principal object. */
interface LastMinted extends Cached {
  kid: string;
  kind: string;
  principalType: string;
  principalId: string;
  tenantId: string | undefined;
}

/**
 * Mints the 60-second ES256 JWT that tells an upstream who is calling: `aud` = service kind,
 * `sub` = principal, `tenant_id`. Signed with the active key of the ring, so upstreams verify
 * it with Gatehouse's JWKS. A token is reused for the same caller, tenant and kind while it
 * has 30 s left, which keeps an ECDSA signature off most proxied requests.
 */
@Injectable()
export class InternalTokenService {
  private cache = new Map<string, Cached>();
  /** signatures under way, by cache key (shared by the calls that ask meanwhile) */
  private readonly minting = new Map<string, Promise<string>>();
  /**
   * The last token handed out for each principal object: the proxied fast path reuses one
   * principal object per verified access token, so a repeat call finds its token by identity
   * instead of building and hashing the cache key (profiled: ~270 bytes per proxied request).
   */
  private readonly lastMinted = new WeakMap<Principal, LastMinted>();

  constructor(
    private readonly keys: SigningKeyService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** The token `mint` would answer when it has one to reuse, without waiting; undefined when one must be signed. */
  mintNow(kind: ServiceKind | 'forward', principal: Principal, tenantId: string | undefined): string | undefined {
    const { kid } = this.keys.signingKey();
    const now = Math.floor(Date.now() / 1000);
    const last = this.lastMinted.get(principal);
    if (
      last !== undefined &&
      last.kid === kid &&
      last.kind === kind &&
      last.tenantId === tenantId &&
      last.principalId === principal.id &&
      last.principalType === principal.type &&
      last.exp - now >= REUSE_WHILE_REMAINING_S
    ) {
      return last.token;
    }
    const cached = this.cache.get(`${kid}|${kind}|${principal.type}|${principal.id}|${tenantId ?? ''}`);
    if (cached === undefined || cached.exp - now < REUSE_WHILE_REMAINING_S) return undefined;
    this.remember(principal, kid, kind, tenantId, cached);
    return cached.token;
  }

  private remember(principal: Principal, kid: string, kind: string, tenantId: string | undefined, cached: Cached): void {
    this.lastMinted.set(principal, { ...cached, kid, kind, principalType: principal.type, principalId: principal.id, tenantId });
  }

  /** `kind` is the token's audience: a service kind, or `forward` for the decision API (CONTRACT §10). */
  async mint(kind: ServiceKind | 'forward', principal: Principal, tenantId: string | undefined): Promise<string> {
    // read once: the key named in the cache key is the key that signs
    const signingKey = this.keys.signingKey();
    const { kid } = signingKey;
    const now = Math.floor(Date.now() / 1000);
    const cacheKey = `${kid}|${kind}|${principal.type}|${principal.id}|${tenantId ?? ''}`;
    const cached = this.cache.get(cacheKey);
    if (cached !== undefined && cached.exp - now >= REUSE_WHILE_REMAINING_S) return cached.token;
    // the calls in flight when the cached token turns 30 s old all land here at once: one
    // signature for all of them (they each signed one before: 32 callers, 32 ECDSA signatures)
    const pending = this.minting.get(cacheKey);
    if (pending !== undefined) return pending;
    const minted = this.sign(signingKey, kind, principal, tenantId, cacheKey, now).finally(() => this.minting.delete(cacheKey));
    this.minting.set(cacheKey, minted);
    return minted;
  }

  /** Signs a new token (60 s) for the caller, tenant and kind, and keeps it for reuse. */
  private async sign(
    { kid, privateKey }: ReturnType<SigningKeyService['signingKey']>,
    kind: ServiceKind | 'forward',
    principal: Principal,
    tenantId: string | undefined,
    cacheKey: string,
    now: number,
  ): Promise<string> {
    const exp = now + INTERNAL_TOKEN_TTL_S;
    const claims: Record<string, unknown> = { principal_type: principal.type };
    if (tenantId !== undefined) claims.tenant_id = tenantId;
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: SIGNING_ALGORITHM, typ: 'JWT', kid })
      .setIssuer(this.config.PUBLIC_URL)
      .setAudience(kind)
      .setSubject(principal.id)
      .setIssuedAt(now)
      .setExpirationTime(exp)
      .setJti(randomUUID())
      .sign(privateKey);
    if (this.cache.size >= CACHE_LIMIT) this.cache = new Map();
    const minted = { token, exp };
    this.cache.set(cacheKey, minted);
    this.remember(principal, kid, kind, tenantId, minted);
    return token;
  }
}
