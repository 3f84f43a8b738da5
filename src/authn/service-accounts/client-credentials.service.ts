import { timingSafeEqual } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { AppError } from '../../common/app-error';
import { hashToken } from '../../common/opaque-token';
import { PrismaService } from '../../database/prisma.service';
import type { ServiceAccount } from '../../generated/prisma/client';
import { ServiceAccountRepository } from '../../identity/service-account.repository';
import { MetricsService } from '../../observability/metrics.service';
import { AccessTokenService } from '../../session/access-token.service';
import { RevocationService } from '../../session/revocation.service';
import { AbuseLimiter } from '../abuse-limiter.service';
import { BASIC_CHALLENGE, type PresentedClient } from '../oauth/client-authentication';

const sameHash = (a: string, b: string | null) => b !== null && a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

@Injectable()
export class ClientCredentialsService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly serviceAccounts: ServiceAccountRepository,
    private readonly accessTokens: AccessTokenService,
    private readonly limiter: AbuseLimiter,
    private readonly revocations: RevocationService,
    private readonly metrics: MetricsService,
  ) {}

  /** OAuth client_credentials for service accounts; the previous secret works during its overlap. */
  async issue(client: PresentedClient): Promise<{ access_token: string; token_type: 'Bearer'; expires_in: number }> {
    const account = await this.authenticate(client);
    const minted = await this.accessTokens.mint({ sub: account.id, amr: ['client_secret'], principalType: 'service_account' });
    return { access_token: minted.token, token_type: 'Bearer', expires_in: minted.expiresIn };
  }

  /**
   * The service account behind a client id and secret, or 401 `invalid_credentials` (with a
   * Basic challenge when the client used HTTP Basic). Attempts count against the client id.
   */
  async authenticate(client: PresentedClient): Promise<ServiceAccount> {
    await this.limiter.consumeAccount(`client:${client.clientId}`);
    const account = await this.serviceAccounts.findByClientId(this.prisma, client.clientId);
    const presented = hashToken(client.clientSecret);
    const valid =
      account !== null &&
      !this.revocations.isPrincipalInactive(account.id) &&
      (sameHash(presented, account.secretHash) ||
        (account.previousExpiresAt !== null &&
          account.previousExpiresAt.getTime() > Date.now() &&
          sameHash(presented, account.previousSecretHash)));
    if (!valid) {
      this.metrics.authFailures.inc({ reason: 'invalid_client' });
      throw new AppError('invalid_credentials', {
        logReason: 'client credentials refused',
        headers: client.method === 'basic' ? BASIC_CHALLENGE : undefined,
      });
    }
    await this.limiter.resetAccount(`client:${client.clientId}`);
    return account;
  }
}
