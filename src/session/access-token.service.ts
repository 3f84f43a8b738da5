import { randomUUID, sign, type KeyObject } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { jwtVerify, type JWTPayload } from 'jose';
import { AppError } from '../common/app-error';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { CLOCK_TOLERANCE_S, SIGNING_ALGORITHM, SigningKeyService } from './signing-key.service';

export const ACCESS_TOKEN_AUDIENCE = 'gatehouse';
export const ACCESS_TOKEN_TYPE = 'at+jwt';
const VERIFIED_CACHE_SIZE = 10_000;
/** Characters of a token's end that key its verification cache entry (24 bytes of an ES256 signature). */
const VERIFIED_KEY_CHARS = 32;

/** The verification cache's key of a token: its last VERIFIED_KEY_CHARS characters. */
export function verifiedKey(token: string): string {
  return token.length <= VERIFIED_KEY_CHARS ? token : token.slice(-VERIFIED_KEY_CHARS);
}

export type PrincipalType = 'user' | 'service_account';

export interface AccessTokenClaims {
  sub: string;
  sid?: string;
  amr: string[];
  principal_type: PrincipalType;
  jti: string;
  iat: number;
  exp: number;
}

export interface MintedToken {
  token: string;
  expiresIn: number;
  claims: AccessTokenClaims;
}

/**
 * A compact JWS, ES256, signed on this thread with the KeyObject the key ring made once per key
 * (`encodedHeader` is the base64url header, also made once per key). jose signs through
 * WebCrypto, which queues the job on libuv's thread pool: the same four threads argon2 runs on,
 * so under sign-in load every token waited behind password hashes.
 */
export function signEs256(encodedHeader: string, payload: Record<string, unknown>, key: KeyObject): string {
  const input = `${encodedHeader}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
  // DER from sign(), turned into JWS's r‖s here: `dsaEncoding: 'ieee-p1363'` doubled the CPU of
  // every signature (52 against 26 µs on this machine, measured in docs/decisions.md)
  const signature = derToP1363(sign('sha256', Buffer.from(input), key));
  return `${input}.${signature.toString('base64url')}`;
}

/** P-256 coordinate size: r and s are 32 bytes each in a JWS signature (RFC 7518 §3.4). */
const ES256_PART = 32;

/**
 * An ECDSA signature as DER, SEQUENCE { INTEGER r, INTEGER s }, to the fixed-size r‖s of JWS.
 * For P-256 the whole SEQUENCE is under 128 bytes, so every length is one byte; an INTEGER is
 * minimal: a leading zero byte when its high bit is set (33 bytes), shorter when r or s is small
 * (left-padded with zeros here).
 */
export function derToP1363(der: Buffer): Buffer {
  const out = Buffer.alloc(2 * ES256_PART);
  let offset = 2;
  for (let part = 0; part < 2; part += 1) {
    const length = der[offset + 1]!;
    const skip = Math.max(length - ES256_PART, 0);
    const start = offset + 2 + skip;
    der.copy(out, part * ES256_PART + ES256_PART - (length - skip), start, offset + 2 + length);
    offset += 2 + length;
  }
  return out;
}

@Injectable()
export class AccessTokenService {
  private encodedHeader = { kid: '', value: '' };

  constructor(
    private readonly keys: SigningKeyService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** `notAfter` caps the lifetime (a session's absolute end). */
  /** Resolves at once (kept a promise for callers and a future remote signer). */
  mint(input: { sub: string; sid?: string; amr: string[]; principalType: PrincipalType; notAfter?: Date }): Promise<MintedToken> {
    const now = Math.floor(Date.now() / 1000);
    let exp = now + this.config.ACCESS_TOKEN_TTL;
    if (input.notAfter !== undefined) exp = Math.min(exp, Math.floor(input.notAfter.getTime() / 1000));
    const jti = randomUUID();
    const payload: Record<string, unknown> = { amr: input.amr, principal_type: input.principalType };
    if (input.sid !== undefined) payload.sid = input.sid;
    const { kid, keyObject } = this.keys.signingKey();
    if (this.encodedHeader.kid !== kid) {
      const header = { alg: SIGNING_ALGORITHM, typ: ACCESS_TOKEN_TYPE, kid };
      this.encodedHeader = { kid, value: Buffer.from(JSON.stringify(header)).toString('base64url') };
    }
    const token = signEs256(
      this.encodedHeader.value,
      { ...payload, iss: this.config.PUBLIC_URL, aud: ACCESS_TOKEN_AUDIENCE, sub: input.sub, iat: now, exp, jti },
      keyObject,
    );
    return Promise.resolve({
      token,
      expiresIn: Math.max(exp - now, 0),
      claims: { sub: input.sub, sid: input.sid, amr: input.amr, principal_type: input.principalType, jti, iat: now, exp },
    });
  }

  /**
   * Verifies signature (ES256 only, known kid), typ, iss, aud, exp/nbf with 30 s leeway and
   * required claims. Every failure is the same `invalid_token`; the precise reason is for the log.
   */
  async verify(token: string): Promise<AccessTokenClaims> {
    const cached = this.verifiedNow(token);
    if (cached !== undefined) return cached;
    const { claims, kid } = await this.verifyUncached(token);
    this.remember(token, claims, kid);
    return claims;
  }

  /**
   * The claims of a token that already verified and is still valid, without waiting (the
   * proxied fast path); undefined when it must go through `verify`.
   */
  verifiedNow(token: string): AccessTokenClaims | undefined {
    const key = verifiedKey(token);
    const cached = this.verified.get(key);
    // the whole token, compared: the key only finds the entry
    if (cached === undefined || cached.token !== token) return undefined;
    // a revoked signing key (POST /admin/keys/{kid}/revoke) stops its tokens, cached or not
    if (cached.claims.exp + CLOCK_TOLERANCE_S > Date.now() / 1000 && this.keys.isPublished(cached.kid)) return cached.claims;
    this.verified.delete(key);
    return undefined;
  }

  /**
   * A token string that verified once verifies again until it expires (signature, issuer,
   * audience and type cannot change), so the signature check — a WebCrypto job on libuv's
   * thread pool — runs once per token rather than once per request. Revocation is not
   * cached here: callers check it on every request.
   *
   * Keyed by the token's last characters (its signature's end, `verifiedKey`), the entry
   * holding the whole token, which must equal the one presented: a token arrives as a new
   * string on every request, and V8 hashes a string key character by character (~1.1 µs for a
   * 600-character token, measured; the key's 32 characters and the comparison ~0.25 µs). Two
   * tokens sharing the key only replace each other's entry (a cache miss, never a wrong hit).
   */
  private readonly verified = new Map<string, { token: string; claims: AccessTokenClaims; kid: string }>();

  private remember(token: string, claims: AccessTokenClaims, kid: string): void {
    if (this.verified.size >= VERIFIED_CACHE_SIZE) {
      // Map keeps insertion order: drop the oldest entry
      const oldest = this.verified.keys().next().value;
      if (oldest !== undefined) this.verified.delete(oldest);
    }
    this.verified.set(verifiedKey(token), { token, claims, kid });
  }

  private async verifyUncached(token: string): Promise<{ claims: AccessTokenClaims; kid: string }> {
    let payload: JWTPayload;
    let kid = '';
    try {
      ({ payload } = await jwtVerify(
        token,
        async (header) => {
          const key = await this.keys.verificationKey(header.kid);
          if (key === undefined) throw new Error(`unknown kid`);
          kid = header.kid ?? '';
          return key;
        },
        {
          algorithms: [SIGNING_ALGORITHM],
          typ: ACCESS_TOKEN_TYPE,
          issuer: this.config.PUBLIC_URL,
          audience: ACCESS_TOKEN_AUDIENCE,
          requiredClaims: ['exp', 'iat', 'sub', 'jti'],
          clockTolerance: CLOCK_TOLERANCE_S,
        },
      ));
    } catch (error) {
      throw new AppError('invalid_token', { logReason: `token rejected: ${error instanceof Error ? error.message : 'invalid'}` });
    }
    // jose accepts an audience array holding ours among others, a future iat and any lifetime:
    // a token meant for several services, minted ahead, or living longer than Gatehouse ever
    // issues is not one of ours.
    const now = Math.floor(Date.now() / 1000);
    if (Array.isArray(payload.aud) && payload.aud.some((audience) => audience !== ACCESS_TOKEN_AUDIENCE)) {
      throw new AppError('invalid_token', { logReason: 'token rejected: aud names other audiences' });
    }
    if (payload.iat! > now + CLOCK_TOLERANCE_S) {
      throw new AppError('invalid_token', { logReason: 'token rejected: iat in the future' });
    }
    if (payload.exp! - payload.iat! > this.config.ACCESS_TOKEN_TTL) {
      throw new AppError('invalid_token', { logReason: 'token rejected: lifetime above ACCESS_TOKEN_TTL' });
    }
    const principalType = payload.principal_type;
    const amr = payload.amr;
    if ((principalType !== 'user' && principalType !== 'service_account') || !Array.isArray(amr)) {
      throw new AppError('invalid_token', { logReason: 'token rejected: missing principal_type or amr' });
    }
    if (principalType === 'user' && typeof payload.sid !== 'string') {
      throw new AppError('invalid_token', { logReason: 'token rejected: user token without sid' });
    }
    return {
      kid,
      claims: {
        sub: payload.sub!,
        sid: typeof payload.sid === 'string' ? payload.sid : undefined,
        amr: amr.map(String),
        principal_type: principalType,
        jti: payload.jti!,
        iat: payload.iat!,
        exp: payload.exp!,
      },
    };
  }
}
