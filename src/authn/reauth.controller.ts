import { ApiNoContentResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Body, Controller, HttpCode, Post, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { Authenticated } from '../common/auth-declaration';
import { ZodValidationPipe } from '../common/zod-validation.pipe';
import { passwordField } from '../identity/password-policy';
import { TOTP_DIGITS } from './mfa/totp';
import { ReauthService, type ReauthProof } from './reauth.service';

const reauthBody = z
  .object({
    password: passwordField.optional(),
    code: z
      .string()
      .regex(new RegExp(`^\\d{${TOTP_DIGITS}}$`), `must be ${TOTP_DIGITS} digits`)
      .optional(),
    recovery_code: z.string().min(1).max(64).optional(),
  })
  .refine((body) => [body.password, body.code, body.recovery_code].filter((value) => value !== undefined).length === 1, {
    message: 'give exactly one of password, code and recovery_code',
    path: ['password'],
  });

function proofOf(body: z.infer<typeof reauthBody>): ReauthProof {
  if (body.password !== undefined) return { kind: 'password', password: body.password };
  if (body.code !== undefined) return { kind: 'totp', code: body.code };
  return { kind: 'recovery_code', code: body.recovery_code! };
}

@ApiTags('account')
@Controller('v1/auth')
export class ReauthController {
  constructor(private readonly reauth: ReauthService) {}

  /** CONTRACT §4 "Recent authentication": step-up for admin actions and second-factor changes. */
  @Authenticated()
  @Post('reauth')
  @HttpCode(204)
  @ApiOperation({ summary: 'Prove who you are again (password, TOTP code or recovery code) for step-up' })
  @ApiNoContentResponse({ description: 'the session counts as freshly authenticated' })
  async reauthenticate(
    @Body({ schema: reauthBody, pipes: [new ZodValidationPipe(reauthBody)] }) body: z.infer<typeof reauthBody>,
    @Req() request: FastifyRequest,
  ): Promise<void> {
    // the guard sets the principal on every @Authenticated route
    await this.reauth.reauthenticate(request.principal!, proofOf(body), request.ctx.clientIp);
  }
}
