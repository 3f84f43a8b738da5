import { timingSafeEqual } from 'node:crypto';
import { Body, Controller, HttpCode, Injectable, Post, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { Public } from '../../authz/auth-declaration';
import { AppError } from '../../common/app-error';
import { hashToken } from '../../common/opaque-token';
import { ZodValidationPipe } from '../../common/zod-validation.pipe';
import { PrismaService } from '../../database/prisma.service';
import { MetricsService } from '../../observability/metrics.service';
import { AccessTokenService } from '../../session/access-token.service';
import { RevocationService } from '../../session/revocation.service';
import { AbuseLimiter } from '../abuse-limiter.service';

const sameHash = (a: string, b: string | null) => b !== null && a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

@Injectable()
export class ClientCredentialsService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly accessTokens: AccessTokenService,
    private readonly limiter: AbuseLimiter,
    private readonly revocations: RevocationService,
    private readonly metrics: MetricsService,
  ) {}

  /** OAuth client_credentials for service accounts; the previous secret works during its overlap. */
  async issue(
    clientId: string,
    clientSecret: string,
    ip: string,
  ): Promise<{ access_token: string; token_type: 'Bearer'; expires_in: number }> {
    await this.limiter.consumeIp(ip);
    await this.limiter.consumeAccount(`client:${clientId}`);
    const account = await this.prisma.serviceAccount.findUnique({ where: { clientId } });
    const presented = hashToken(clientSecret);
    const valid =
      account !== null &&
      !this.revocations.isPrincipalInactive(account.id) &&
      (sameHash(presented, account.secretHash) ||
        (account.previousExpiresAt !== null &&
          account.previousExpiresAt.getTime() > Date.now() &&
          sameHash(presented, account.previousSecretHash)));
    if (!valid) {
      this.metrics.authFailures.inc({ reason: 'invalid_client' });
      throw new AppError('invalid_credentials', { logReason: 'client credentials refused' });
    }
    await this.limiter.resetAccount(`client:${clientId}`);
    const minted = await this.accessTokens.mint({ sub: account.id, amr: ['client_secret'], principalType: 'service_account' });
    return { access_token: minted.token, token_type: 'Bearer', expires_in: minted.expiresIn };
  }
}

const tokenBody = z.object({
  grant_type: z.literal('client_credentials', { error: 'must be client_credentials' }),
  client_id: z.string().min(1).max(200),
  client_secret: z.string().min(1).max(512),
});

@Controller('v1/auth')
export class ClientCredentialsController {
  constructor(private readonly service: ClientCredentialsService) {}

  /** JSON or application/x-www-form-urlencoded (the one form route). */
  @Public()
  @Post('token')
  @HttpCode(200)
  token(
    @Body({ schema: tokenBody, pipes: [new ZodValidationPipe(tokenBody)] }) body: z.infer<typeof tokenBody>,
    @Req() request: FastifyRequest,
  ): Promise<{ access_token: string; token_type: 'Bearer'; expires_in: number }> {
    return this.service.issue(body.client_id, body.client_secret, request.ctx.clientIp);
  }
}
