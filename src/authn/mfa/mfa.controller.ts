import { ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Body, Controller, Delete, Header, HttpCode, Post, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { Authenticated, Public } from '../../common/auth-declaration';
import { ZodValidationPipe } from '../../common/zod-validation.pipe';
import type { Principal } from '../../session/principal';
import { tokenResponseSchema, type TokenResponse } from '../../session/token-response';
import { clientInfo } from '../client-info';
import { MfaSigninService } from './mfa-signin.service';
import type { SecondFactor } from './second-factor.service';
import { TOTP_DIGITS } from './totp';
import { TotpService } from './totp.service';

const totpCode = z.string().regex(new RegExp(`^\\d{${TOTP_DIGITS}}$`), `must be ${TOTP_DIGITS} digits`);
const recoveryCode = z.string().min(1).max(64);
const eitherFactor = {
  check: (body: { code?: string; recovery_code?: string }) => (body.code === undefined) !== (body.recovery_code === undefined),
  message: { message: 'give exactly one of code and recovery_code', path: ['code'] },
};

const codeBody = z.object({ code: totpCode });
const factorBody = z
  .object({ code: totpCode.optional(), recovery_code: recoveryCode.optional() })
  .refine(eitherFactor.check, eitherFactor.message);
const signinMfaBody = z
  .object({ mfa_token: z.string().min(1).max(512), code: totpCode.optional(), recovery_code: recoveryCode.optional() })
  .refine(eitherFactor.check, eitherFactor.message);

const enrollmentSchema = z
  .object({ secret: z.string().describe('base32 TOTP secret'), otpauth_url: z.string().describe('otpauth:// URI for a QR code') })
  .meta({ id: 'TotpEnrollment' });
const recoveryCodesSchema = z
  .object({ recovery_codes: z.array(z.string()).describe('single-use codes, shown only here') })
  .meta({ id: 'RecoveryCodes' });

function factorOf(body: { code?: string; recovery_code?: string }): SecondFactor {
  return body.code !== undefined ? { kind: 'totp', code: body.code } : { kind: 'recovery_code', code: body.recovery_code! };
}

function principalOf(request: FastifyRequest): Principal {
  // the guard sets it on every @Authenticated route
  return request.principal!;
}

@ApiTags('mfa')
@Controller('v1/auth')
export class MfaController {
  constructor(
    private readonly totp: TotpService,
    private readonly signin: MfaSigninService,
  ) {}

  @Public()
  @Post('signin/mfa')
  // carries a token, code or secret: no cache may keep it (CONTRACT §4)
  @Header('cache-control', 'no-store')
  @HttpCode(200)
  @ApiOperation({ summary: 'Finish a sign-in with the second factor (TOTP or a recovery code)' })
  @ApiOkResponse({ standardSchema: tokenResponseSchema })
  signinMfa(
    @Body({ schema: signinMfaBody, pipes: [new ZodValidationPipe(signinMfaBody)] }) body: z.infer<typeof signinMfaBody>,
    @Req() request: FastifyRequest,
  ): Promise<TokenResponse> {
    return this.signin.complete(body.mfa_token, factorOf(body), clientInfo(request));
  }

  @Authenticated()
  @Post('mfa/totp/enroll')
  // carries a token, code or secret: no cache may keep it (CONTRACT §4)
  @Header('cache-control', 'no-store')
  @HttpCode(200)
  @ApiOperation({ summary: 'Start TOTP enrolment: a new secret to confirm' })
  @ApiOkResponse({ standardSchema: enrollmentSchema })
  enroll(@Req() request: FastifyRequest): Promise<z.infer<typeof enrollmentSchema>> {
    return this.totp.enroll(principalOf(request));
  }

  @Authenticated()
  @Post('mfa/totp/confirm')
  // carries a token, code or secret: no cache may keep it (CONTRACT §4)
  @Header('cache-control', 'no-store')
  @HttpCode(200)
  @ApiOperation({ summary: 'Confirm TOTP with a first code; answers the recovery codes' })
  @ApiOkResponse({ standardSchema: recoveryCodesSchema })
  confirm(
    @Body({ schema: codeBody, pipes: [new ZodValidationPipe(codeBody)] }) body: z.infer<typeof codeBody>,
    @Req() request: FastifyRequest,
  ): Promise<z.infer<typeof recoveryCodesSchema>> {
    return this.totp.confirm(principalOf(request), body.code);
  }

  @Authenticated()
  @Delete('mfa/totp')
  @HttpCode(204)
  @ApiOperation({ summary: 'Turn TOTP off, proven with a current code or a recovery code' })
  @ApiNoContentResponse({ description: 'TOTP removed' })
  async disable(
    @Body({ schema: factorBody, pipes: [new ZodValidationPipe(factorBody)] }) body: z.infer<typeof factorBody>,
    @Req() request: FastifyRequest,
  ): Promise<void> {
    await this.totp.disable(principalOf(request), factorOf(body));
  }

  @Authenticated()
  @Post('mfa/recovery-codes')
  // carries a token, code or secret: no cache may keep it (CONTRACT §4)
  @Header('cache-control', 'no-store')
  @HttpCode(200)
  @ApiOperation({ summary: 'Replace the recovery codes' })
  @ApiOkResponse({ standardSchema: recoveryCodesSchema })
  regenerateRecoveryCodes(
    @Body({ schema: codeBody, pipes: [new ZodValidationPipe(codeBody)] }) body: z.infer<typeof codeBody>,
    @Req() request: FastifyRequest,
  ): Promise<z.infer<typeof recoveryCodesSchema>> {
    return this.totp.regenerateRecoveryCodes(principalOf(request), body.code);
  }
}
