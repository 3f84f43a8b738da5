import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Body, Controller, Header, HttpCode, Post, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { DelegatedTo, Public } from '../../common/auth-declaration';
import { ZodValidationPipe } from '../../common/zod-validation.pipe';
import { presentedClient } from './client-authentication';
import { introspectionSchema, TokenIntrospectionService, type IntrospectionResponse } from './token-introspection.service';
import { TokenRevocationService } from './token-revocation.service';

const introspectBody = z.object({
  token: z.string().min(1).max(8192),
  token_type_hint: z.string().max(100).optional(),
  client_id: z.string().min(1).max(200).optional(),
  client_secret: z.string().min(1).max(512).optional(),
});
const revokeBody = z.object({
  token: z.string().min(1).max(8192),
  token_type_hint: z.string().max(100).optional(),
  // public clients may name themselves; there is nothing to check it against
  client_id: z.string().max(200).optional(),
});

/** RFC 7662 introspection and RFC 7009 revocation (CONTRACT §12); JSON or form bodies. */
@ApiTags('oauth')
@Controller('v1/auth')
export class OAuthEndpointsController {
  constructor(
    private readonly introspection: TokenIntrospectionService,
    private readonly revocation: TokenRevocationService,
  ) {}

  /** The caller authenticates as a service account inside the handler (Basic or body), like /token. */
  @DelegatedTo('client credentials of a service account holding iam.tokens.introspect at platform scope')
  @Post('introspect')
  @Header('cache-control', 'no-store')
  @HttpCode(200)
  @ApiOperation({ summary: 'RFC 7662 token introspection (service accounts holding iam.tokens.introspect)' })
  @ApiOkResponse({ standardSchema: introspectionSchema })
  introspect(
    @Body({ schema: introspectBody, pipes: [new ZodValidationPipe(introspectBody)] }) body: z.infer<typeof introspectBody>,
    @Req() request: FastifyRequest,
  ): Promise<IntrospectionResponse> {
    return this.introspection.introspect(presentedClient(request.headers.authorization, body, 'always'), body.token);
  }

  /** 200 whatever the token was: the answer tells nobody whether it existed. */
  @Public()
  @Post('revoke')
  @Header('cache-control', 'no-store')
  @HttpCode(200)
  @ApiOperation({ summary: 'RFC 7009 revocation of a refresh or access token; 200 whatever the token was' })
  @ApiOkResponse({ schema: { type: 'object', additionalProperties: false }, description: 'always `{}`' })
  async revoke(
    @Body({ schema: revokeBody, pipes: [new ZodValidationPipe(revokeBody)] }) body: z.infer<typeof revokeBody>,
  ): Promise<Record<string, never>> {
    await this.revocation.revoke(body.token);
    return {};
  }
}
