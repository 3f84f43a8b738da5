import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Controller, Get, Header } from '@nestjs/common';
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
  constructor(private readonly keys: SigningKeyService) {}

  /** Every key that may still verify a live token (next, active, recently retired); public members only. */
  @Public()
  @Get('jwks.json')
  @Header('cache-control', 'public, max-age=300')
  @ApiOperation({ summary: 'Public signing keys (JWKS) that verify access tokens' })
  @ApiOkResponse({ standardSchema: jwksSchema })
  jwks(): { keys: JWK[] } {
    return this.keys.publicJwks();
  }
}
