import { ApiAcceptedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Body, Controller, Delete, Get, HttpCode, Param, Post, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { Authenticated } from '../../common/auth-declaration';
import { ZodValidationPipe } from '../../common/zod-validation.pipe';
import { emailField } from '../../identity/email';
import { passwordField } from '../../identity/password-policy';
import type { Principal } from '../../session/principal';
import { identityListSchema, identityView, IdentityLinkingService } from '../oidc/identity-linking.service';
import { AccountDeletionService } from './account-deletion.service';
import { CredentialChangeService } from './credential-change.service';
import { PasswordProof } from './password-proof';

// the current password is compared, never judged by today's policy (it may predate it)
const currentPassword = passwordField;
const passwordBody = z.object({ current_password: currentPassword, new_password: passwordField });
const emailBody = z.object({ new_email: emailField, password: currentPassword });
const deleteBody = z
  .object({
    password: currentPassword.optional(),
    code: z
      .string()
      .regex(/^\d{6}$/, 'must be 6 digits')
      .optional(),
  })
  .refine((body) => body.password === undefined || body.code === undefined, { message: 'send password or code, not both' });

const acceptedSchema = z.object({ status: z.literal('accepted'), message: z.string() }).meta({ id: 'Accepted' });

export const EMAIL_CHANGE_ACCEPTED: z.infer<typeof acceptedSchema> = {
  status: 'accepted',
  message: 'If the address can be used, a confirmation link has been sent to it. The change happens once the link is followed.',
};
export const RESEND_ACCEPTED: z.infer<typeof acceptedSchema> = {
  status: 'accepted',
  message: 'If the address is not verified yet, a new verification link has been sent.',
};

function principalOf(request: FastifyRequest): Principal {
  // the guard sets it on every @Authenticated route
  return request.principal!;
}

/** Self-service on one's own account (CONTRACT §12): password, email, deletion, Google identities. */
@ApiTags('account')
@Controller('v1/auth')
export class SelfServiceController {
  constructor(
    private readonly credentials: CredentialChangeService,
    private readonly deletion: AccountDeletionService,
    private readonly linking: IdentityLinkingService,
    private readonly proof: PasswordProof,
  ) {}

  @Authenticated()
  @Post('password')
  @HttpCode(204)
  @ApiOperation({ summary: 'Change the caller’s password (current password required); other sessions end' })
  @ApiNoContentResponse({ description: 'password changed' })
  async changePassword(
    @Body({ schema: passwordBody, pipes: [new ZodValidationPipe(passwordBody)] }) body: z.infer<typeof passwordBody>,
    @Req() request: FastifyRequest,
  ): Promise<void> {
    await this.credentials.changePassword(principalOf(request), body.current_password, body.new_password);
  }

  @Authenticated()
  @Post('email')
  @HttpCode(202)
  @ApiOperation({ summary: 'Ask to change the caller’s email: a confirmation link goes to the new address' })
  @ApiAcceptedResponse({ standardSchema: acceptedSchema })
  async changeEmail(
    @Body({ schema: emailBody, pipes: [new ZodValidationPipe(emailBody)] }) body: z.infer<typeof emailBody>,
    @Req() request: FastifyRequest,
  ): Promise<typeof EMAIL_CHANGE_ACCEPTED> {
    await this.credentials.requestEmailChange(principalOf(request), body.new_email, body.password);
    return EMAIL_CHANGE_ACCEPTED;
  }

  @Authenticated()
  @Post('verify-email/resend')
  @HttpCode(202)
  @ApiOperation({ summary: 'Send the email-verification link again' })
  @ApiAcceptedResponse({ standardSchema: acceptedSchema })
  async resendVerification(@Req() request: FastifyRequest): Promise<typeof RESEND_ACCEPTED> {
    await this.credentials.resendVerification(principalOf(request));
    return RESEND_ACCEPTED;
  }

  @Authenticated()
  @Delete('me')
  @HttpCode(204)
  @ApiOperation({
    summary: 'Delete the caller’s own account',
    description:
      'Proven with `password`; an account without a password with a fresh TOTP `code`; an account with neither ' +
      '(Google sign-in only) needs an authentication of this session within SELF_REAUTH_MAX_AGE (a fresh Google ' +
      'sign-in, or POST /v1/auth/reauth), else 403 `reauth_required`.',
  })
  @ApiNoContentResponse({ description: 'account deleted' })
  async deleteAccount(
    @Body({ schema: deleteBody, pipes: [new ZodValidationPipe(deleteBody)] }) body: z.infer<typeof deleteBody>,
    @Req() request: FastifyRequest,
  ): Promise<void> {
    await this.deletion.deleteOwn(principalOf(request), body);
  }

  @Authenticated()
  @Get('identities')
  @ApiOperation({ summary: 'The caller’s linked external identities' })
  @ApiOkResponse({ standardSchema: identityListSchema })
  async listIdentities(@Req() request: FastifyRequest): Promise<z.infer<typeof identityListSchema>> {
    const user = await this.proof.requireUser(principalOf(request));
    return { items: (await this.linking.listForUser(user.id)).map(identityView), next_cursor: null };
  }

  /** Not the last way to sign in (409); audited `identity.unlinked`, the owner is mailed. */
  @Authenticated()
  @Delete('identities/:id')
  @HttpCode(204)
  @ApiOperation({ summary: 'Unlink one of the caller’s external identities (refused when it is the last sign-in method)' })
  @ApiNoContentResponse({ description: 'unlinked' })
  async unlinkIdentity(@Param('id') identityId: string, @Req() request: FastifyRequest): Promise<void> {
    const user = await this.proof.requireUser(principalOf(request));
    await this.linking.unlink(user.id, identityId);
  }
}
