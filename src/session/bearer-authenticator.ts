import { Injectable } from '@nestjs/common';
import { AppError } from '../common/app-error';
import { MetricsService } from '../observability/metrics.service';
import { AccessTokenService } from './access-token.service';
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

  async authenticate(authorization: string | undefined): Promise<Principal> {
    if (authorization === undefined || authorization.trim() === '') {
      this.metrics.authFailures.inc({ reason: 'missing_token' });
      throw new AppError('unauthenticated', { logReason: 'no bearer token' });
    }
    const match = BEARER.exec(authorization.trim());
    if (match === null) {
      this.metrics.authFailures.inc({ reason: 'malformed_token' });
      throw new AppError('invalid_token', { logReason: 'authorization header is not a bearer token' });
    }
    let claims;
    try {
      claims = await this.accessTokens.verify(match[1]!);
    } catch (error) {
      this.metrics.authFailures.inc({ reason: 'invalid_token' });
      throw error;
    }
    if (claims.sid !== undefined && this.revocations.isSessionRevoked(claims.sid)) {
      this.metrics.authFailures.inc({ reason: 'revoked_session' });
      throw new AppError('invalid_token', { logReason: 'token rejected: session revoked' });
    }
    if (this.revocations.isPrincipalInactive(claims.sub)) {
      this.metrics.authFailures.inc({ reason: 'inactive_principal' });
      throw new AppError('invalid_token', { logReason: 'token rejected: principal disabled or deleted' });
    }
    return { id: claims.sub, type: claims.principal_type, sessionId: claims.sid, amr: claims.amr };
  }
}
