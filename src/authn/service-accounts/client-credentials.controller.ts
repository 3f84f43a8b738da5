import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Body, Controller, Header, HttpCode, Post, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { AppError } from '../../common/app-error';
import { Public } from '../../common/auth-declaration';
import { ZodValidationPipe } from '../../common/zod-validation.pipe';
import { BASIC_CHALLENGE, presentedClient } from '../oauth/client-authentication';
import { ClientCredentialsService } from './client-credentials.service';
import { AuthIpLimited } from '../auth-ip-limit.guard';

const tokenBody = z.object({
  grant_type: z.string().min(1).max(200),
  // absent when the client authenticates with HTTP Basic
  client_id: z.string().min(1).max(200).optional(),
  client_secret: z.string().min(1).max(512).optional(),
  // accepted and ignored: a service account's token carries no scopes (authorization is live)
  scope: z.string().max(1000).optional(),
});

const clientTokenSchema = z
  .object({ access_token: z.string().describe('ES256 JWT, typ at+jwt'), token_type: z.literal('Bearer'), expires_in: z.number().int() })
  .meta({ id: 'ClientCredentialsToken' });

@ApiTags('oauth')
@Controller('v1/auth')
export class ClientCredentialsController {
  constructor(private readonly service: ClientCredentialsService) {}

  /** JSON or application/x-www-form-urlencoded; client secret in the body or as HTTP Basic (CONTRACT §12). */
  @Public()
  @AuthIpLimited()
  @Post('token')
  // carries a token, code or secret: no cache may keep it (CONTRACT §4)
  @Header('cache-control', 'no-store')
  @HttpCode(200)
  @ApiOperation({ summary: 'Client-credentials grant: an access token for a service account' })
  @ApiOkResponse({ standardSchema: clientTokenSchema })
  token(
    @Body({ schema: tokenBody, pipes: [new ZodValidationPipe(tokenBody)] }) body: z.infer<typeof tokenBody>,
    @Req() request: FastifyRequest,
  ): Promise<z.infer<typeof clientTokenSchema>> {
    if (body.grant_type !== 'client_credentials') {
      throw new AppError('validation_failed', {
        detail: 'Only the client_credentials grant is supported here; users refresh at /v1/auth/refresh.',
        errors: [{ path: 'grant_type', message: 'must be client_credentials' }],
        extensions: { error: 'unsupported_grant_type' },
      });
    }
    const client = presentedClient(request.headers.authorization, body);
    if (client === undefined) {
      throw new AppError('invalid_credentials', { logReason: 'no client credentials', headers: BASIC_CHALLENGE });
    }
    return this.service.issue(client);
  }
}
