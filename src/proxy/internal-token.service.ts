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

/**
 * Mints the 60-second ES256 JWT that tells an upstream who is calling: `aud` = service kind,
 * `sub` = principal, `tenant_id`. Signed with the active key of the ring, so upstreams verify
 * it with Gatehouse's JWKS. A token is reused for the same caller, tenant and kind while it
 * has 30 s left, which keeps an ECDSA signature off most proxied requests.
 */
@Injectable()
export class InternalTokenService {
  private cache = new Map<string, Cached>();

  constructor(
    private readonly keys: SigningKeyService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** The token `mint` would answer when it has one to reuse, without waiting; undefined when one must be signed. */
  mintNow(kind: ServiceKind | 'forward', principal: Principal, tenantId: string | undefined): string | undefined {
    const { kid } = this.keys.signingKey();
    const cached = this.cache.get(`${kid}|${kind}|${principal.type}|${principal.id}|${tenantId ?? ''}`);
    return cached !== undefined && cached.exp - Math.floor(Date.now() / 1000) >= REUSE_WHILE_REMAINING_S ? cached.token : undefined;
  }

  /** `kind` is the token's audience: a service kind, or `forward` for the decision API (CONTRACT §10). */
  async mint(kind: ServiceKind | 'forward', principal: Principal, tenantId: string | undefined): Promise<string> {
    const { kid, privateKey } = this.keys.signingKey();
    const now = Math.floor(Date.now() / 1000);
    const cacheKey = `${kid}|${kind}|${principal.type}|${principal.id}|${tenantId ?? ''}`;
    const cached = this.cache.get(cacheKey);
    if (cached !== undefined && cached.exp - now >= REUSE_WHILE_REMAINING_S) return cached.token;

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
    this.cache.set(cacheKey, { token, exp });
    return token;
  }
}
