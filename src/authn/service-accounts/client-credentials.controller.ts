import { Body, Controller, Header, HttpCode, Post, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { Public } from '../../common/auth-declaration';
import { ZodValidationPipe } from '../../common/zod-validation.pipe';
import { ClientCredentialsService } from './client-credentials.service';

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
  // carries a token, code or secret: no cache may keep it (CONTRACT §4)
  @Header('cache-control', 'no-store')
  @HttpCode(200)
  token(
    @Body({ schema: tokenBody, pipes: [new ZodValidationPipe(tokenBody)] }) body: z.infer<typeof tokenBody>,
    @Req() request: FastifyRequest,
  ): Promise<{ access_token: string; token_type: 'Bearer'; expires_in: number }> {
    return this.service.issue(body.client_id, body.client_secret, request.ctx.clientIp);
  }
}
