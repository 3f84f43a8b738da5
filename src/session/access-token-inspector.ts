import { Injectable } from '@nestjs/common';
import { PrismaService } from '../database/prisma.service';
import { ServiceAccountRepository } from '../identity/service-account.repository';
import { UserRepository } from '../identity/user.repository';
import { AccessTokenService, type AccessTokenClaims } from './access-token.service';
import { RevocationService } from './revocation.service';
import { SessionRepository } from './session.repository';

/**
 * Whether a token is a live Gatehouse access token, for introspection (RFC 7662). Unlike the
 * per-request check (memory only, kept exact by cluster events within the second), this one
 * also reads the database, so a session revoked on another replica a moment ago is already
 * inactive here: introspection answers "is it live now", and callers may cache its answer.
 */
@Injectable()
export class AccessTokenInspector {
  constructor(
    private readonly prisma: PrismaService,
    private readonly accessTokens: AccessTokenService,
    private readonly revocations: RevocationService,
    private readonly sessions: SessionRepository,
    private readonly users: UserRepository,
    private readonly serviceAccounts: ServiceAccountRepository,
  ) {}

  /** The token's claims when it is live; `undefined` for anything else (never throws for a bad token). */
  async liveClaims(token: string): Promise<AccessTokenClaims | undefined> {
    let claims: AccessTokenClaims;
    try {
      claims = await this.accessTokens.verify(token);
    } catch {
      return undefined;
    }
    if (claims.sid !== undefined && this.revocations.isSessionRevoked(claims.sid)) return undefined;
    if (this.revocations.isPrincipalInactive(claims.sub)) return undefined;
    if (claims.principal_type === 'user') {
      const session = await this.sessions.findSession(this.prisma, claims.sid!);
      if (session === null || session.userId !== claims.sub || session.revokedAt !== null) return undefined;
      if (session.expiresAt.getTime() <= Date.now()) return undefined;
      const user = await this.users.findById(this.prisma, claims.sub);
      if (user === null || user.status !== 'active') return undefined;
    } else {
      const account = await this.serviceAccounts.findById(this.prisma, claims.sub);
      if (account === null) return undefined;
    }
    return claims;
  }
}
