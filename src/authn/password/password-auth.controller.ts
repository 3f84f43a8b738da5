import { ApiAcceptedResponse, ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Body, Controller, Header, HttpCode, Post, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { ZodValidationPipe } from '../../common/zod-validation.pipe';
import { Public } from '../../common/auth-declaration';
import { emailField } from '../../identity/email';
import { passwordField } from '../../identity/password-policy';
import { tokenResponseSchema, type TokenResponse } from '../../session/token-response';
import { clientInfo } from '../client-info';
import { signInResultSchema, type MfaPendingResponse } from '../mfa/mfa-challenge.service';
import { PasswordAuthService } from './password-auth.service';
import { AuthIpLimited } from '../auth-ip-limit.guard';

const signupBody = z.object({
  email: emailField,
  password: passwordField,
  display_name: z.string().trim().min(1).max(200).optional(),
});
const signinBody = z.object({ email: emailField, password: passwordField });
/** The sign-in body's pipe, shared with the fast route (signin-fast-path.ts) so both validate alike. */
export const signinBodyPipe = new ZodValidationPipe(signinBody);
export type SigninBody = z.infer<typeof signinBody>;
const tokenBody = z.object({ token: z.string().min(1).max(512) });
const forgotBody = z.object({ email: emailField });
const resetBody = z.object({ token: z.string().min(1).max(512), new_password: passwordField });

export const FORGOT_ACCEPTED = { status: 'accepted', message: 'If an account exists for this email, a reset link has been sent.' };

@ApiTags('auth')
@Controller('v1/auth')
export class PasswordAuthController {
  constructor(private readonly auth: PasswordAuthService) {}

  @Public()
  @AuthIpLimited()
  @Post('signup')
  // carries a token, code or secret: no cache may keep it (CONTRACT §4)
  @Header('cache-control', 'no-store')
  @HttpCode(201)
  @ApiCreatedResponse({ standardSchema: tokenResponseSchema })
  @ApiOperation({ summary: 'Create an account with email and password; signs in' })
  signup(
    @Body({ schema: signupBody, pipes: [new ZodValidationPipe(signupBody)] }) body: z.infer<typeof signupBody>,
    @Req() request: FastifyRequest,
  ): Promise<TokenResponse> {
    return this.auth.signup({ email: body.email, password: body.password, displayName: body.display_name }, clientInfo(request));
  }

  @Public()
  @AuthIpLimited()
  @Post('verify-email')
  @HttpCode(204)
  @ApiOperation({ summary: 'Verify an email address with the token from the mail' })
  @ApiNoContentResponse({ description: 'email verified' })
  async verifyEmail(
    @Body({ schema: tokenBody, pipes: [new ZodValidationPipe(tokenBody)] }) body: z.infer<typeof tokenBody>,
  ): Promise<void> {
    await this.auth.verifyEmail(body.token);
  }

  // served by SigninFastPath (signin-fast-path.ts): Fastify calls it without Nest's per-request chain
  @Public()
  @Post('signin')
  // carries a token, code or secret: no cache may keep it (CONTRACT §4)
  @Header('cache-control', 'no-store')
  @HttpCode(200)
  @ApiOkResponse({ standardSchema: signInResultSchema, description: 'tokens, or MFA-pending when the user has MFA' })
  @ApiOperation({ summary: 'Sign in with email and password: tokens, or MFA-pending' })
  signin(
    @Body({ schema: signinBody, pipes: [signinBodyPipe] }) body: SigninBody,
    @Req() request: FastifyRequest,
  ): Promise<TokenResponse | MfaPendingResponse> {
    return this.auth.signin(body, clientInfo(request));
  }

  @Public()
  @AuthIpLimited()
  @Post('forgot')
  @HttpCode(202)
  @ApiOperation({ summary: 'Ask for a password-reset mail (same answer whether or not the account exists)' })
  @ApiAcceptedResponse({ description: 'a mail is sent when the account exists' })
  async forgot(
    @Body({ schema: forgotBody, pipes: [new ZodValidationPipe(forgotBody)] }) body: z.infer<typeof forgotBody>,
  ): Promise<typeof FORGOT_ACCEPTED> {
    await this.auth.forgot(body.email);
    return FORGOT_ACCEPTED;
  }

  @Public()
  @AuthIpLimited()
  @Post('reset')
  @HttpCode(204)
  @ApiOperation({ summary: 'Set a new password with the reset token; signs out everywhere' })
  @ApiNoContentResponse({ description: 'password set' })
  async reset(@Body({ schema: resetBody, pipes: [new ZodValidationPipe(resetBody)] }) body: z.infer<typeof resetBody>): Promise<void> {
    await this.auth.reset({ token: body.token, newPassword: body.new_password });
  }
}
