import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Controller, Get, Inject, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { APP_CONFIG, type AppConfig } from '../config/config';
import type { JWK } from 'jose';
import { Public } from '../common/auth-declaration';
import { SigningKeyService } from './signing-key.service';
import { z } from 'zod';

const jwksSchema = z
  .object({
    keys: z.array(
      z.looseObject({ kty: z.string(), kid: z.string(), alg: z.string(), use: z.string(), crv: z.string(), x: z.string(), y: z.string() }),
    ),
  })
  .meta({ id: 'JsonWebKeySet' });

@ApiTags('oauth')
@Controller('.well-known')
export class JwksController {
  constructor(
    private readonly keys: SigningKeyService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** Every key that may still verify a live token (next, active, recently retired); public members only. */
  @Public()
  @Get('jwks.json')
  @ApiOperation({ summary: 'Public signing keys (JWKS) that verify access tokens' })
  @ApiOkResponse({ standardSchema: jwksSchema })
  jwks(@Res({ passthrough: true }) reply: FastifyReply): { keys: JWK[] } {
    // JWKS_MAX_AGE: what a verifier may cache, and so how long a new key is published before it signs
    reply.header('cache-control', `public, max-age=${this.config.JWKS_MAX_AGE}`);
    return this.keys.publicJwks();
  }
}
