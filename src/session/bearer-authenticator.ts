import { Injectable } from '@nestjs/common';
import { AppError } from '../common/app-error';
import { MetricsService } from '../observability/metrics.service';
import { AccessTokenService, type AccessTokenClaims } from './access-token.service';
import type { Principal } from './principal';
import { RevocationService } from './revocation.service';

const BEARER = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/i;

/** Turns an Authorization header into a principal: signature, claims, then revocation (all in memory). */
@Injectable()
export class BearerAuthenticator {
  constructor(
    private readonly accessTokens: AccessTokenService,
    private readonly revocations: RevocationService,
    private readonly metrics: MetricsService,
  ) {}

  /** the principal of each cached token's claims, so a request does not build it again */
  private readonly principals = new WeakMap<AccessTokenClaims, Principal>();

  async authenticate(authorization: string | undefined): Promise<Principal> {
    const token = this.bearerToken(authorization);
    const known = this.accessTokens.verifiedNow(token);
    if (known !== undefined) return this.principalOf(known);
    let claims;
    try {
      claims = await this.accessTokens.verify(token);
    } catch (error) {
      this.metrics.authFailures.inc({ reason: 'invalid_token' });
      throw error;
    }
    return this.principalOf(claims);
  }

  /**
   * The same answer as `authenticate` without waiting, when the token already verified (the
   * proxied fast path); undefined when the signature must be checked first. Revocation and the
   * principal's status are checked on every call all the same.
   */
  authenticateNow(authorization: string | undefined): Principal | undefined {
    // `Bearer <token>` exactly, with a token that verified before (so it passed the pattern then)
    if (authorization !== undefined && authorization.startsWith('Bearer ')) {
      const known = this.accessTokens.verifiedNow(authorization.slice(7));
      if (known !== undefined) return this.principalOf(known);
    }
    const claims = this.accessTokens.verifiedNow(this.bearerToken(authorization));
    return claims === undefined ? undefined : this.principalOf(claims);
  }

  private bearerToken(authorization: string | undefined): string {
    if (authorization === undefined || authorization.trim() === '') {
      this.metrics.authFailures.inc({ reason: 'missing_token' });
      throw new AppError('unauthenticated', { logReason: 'no bearer token' });
    }
    const match = BEARER.exec(authorization.trim());
    if (match === null) {
      this.metrics.authFailures.inc({ reason: 'malformed_token' });
      throw new AppError('invalid_token', { logReason: 'authorization header is not a bearer token' });
    }
    return match[1]!;
  }

  /** Revocation and status checks (in memory, every call), then the principal the claims name (made once per token). */
  private principalOf(claims: AccessTokenClaims): Principal {
    if (claims.sid !== undefined && this.revocations.isSessionRevoked(claims.sid)) {
      this.metrics.authFailures.inc({ reason: 'revoked_session' });
      throw new AppError('invalid_token', { logReason: 'token rejected: session revoked' });
    }
    if (this.revocations.isPrincipalInactive(claims.sub)) {
      this.metrics.authFailures.inc({ reason: 'inactive_principal' });
      throw new AppError('invalid_token', { logReason: 'token rejected: principal disabled or deleted' });
    }
    let principal = this.principals.get(claims);
    if (principal === undefined) {
      principal = { id: claims.sub, type: claims.principal_type, sessionId: claims.sid, amr: claims.amr };
      this.principals.set(claims, principal);
    }
    return principal;
  }
}
