import { Injectable } from '@nestjs/common';
import { z } from 'zod';
import { AppError } from '../../common/app-error';
import { PrismaService } from '../../database/prisma.service';
import type { Principal } from '../../session/principal';
import type { ClientInfo } from '../../session/session.service';
import { MfaChallengeService, type SignInResult } from '../mfa/mfa-challenge.service';
import { identitySchema, identityView, IdentityLinkingService } from './identity-linking.service';
import { OidcAuthorizationService } from './oidc-authorization.service';
import { OidcLoginCodeRepository } from './oidc-login-code.repository';
import { withFragment } from './return-to';

const LOGIN_CODE_TTL_S = 60;
const GOOGLE_AMR = ['google'];

export const linkedResponseSchema = z.object({ linked: z.literal(true), identity: identitySchema }).meta({ id: 'LinkedIdentity' });
export type LinkedResponse = z.infer<typeof linkedResponseSchema>;
export type CallbackOutcome = { kind: 'redirect'; location: string } | { kind: 'json'; body: SignInResult | LinkedResponse };

/** Google sign-in and linking (CONTRACT §4): start, link/start, callback, exchange. */
@Injectable()
export class GoogleOidcService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly authorization: OidcAuthorizationService,
    private readonly loginCodes: OidcLoginCodeRepository,
    private readonly linking: IdentityLinkingService,
    private readonly mfa: MfaChallengeService,
  ) {}

  /** `binding` is the browser-binding cookie value the controller sets on the answer. */
  async start(returnTo: string | undefined, binding: string): Promise<{ authorization_url: string }> {
    this.authorization.assertEnabled();
    return { authorization_url: await this.authorization.begin({ returnTo, binding }) };
  }

  async startLink(principal: Principal, returnTo: string | undefined, binding: string): Promise<{ authorization_url: string }> {
    this.authorization.assertEnabled();
    if (principal.type !== 'user') throw new AppError('not_found', { detail: 'No user profile for this principal.' });
    return { authorization_url: await this.authorization.begin({ returnTo, linkUserId: principal.id, binding }) };
  }

  async callback(state: string, callbackQuery: string, binding: string | undefined, client: ClientInfo): Promise<CallbackOutcome> {
    this.authorization.assertEnabled();
    const { claims, returnTo, linkUserId } = await this.authorization.complete(state, callbackQuery, binding);
    if (linkUserId !== null) {
      const identity = await this.linking.linkToUser(linkUserId, claims);
      if (returnTo !== null) return { kind: 'redirect', location: withFragment(returnTo, 'linked', 'google') };
      return { kind: 'json', body: { linked: true, identity: identityView(identity) } };
    }
    const user = await this.linking.userForSignIn(claims);
    if (returnTo !== null) {
      // the browser carries only a short-lived code; the app redeems it for tokens (or the MFA step)
      const code = await this.loginCodes.issue(this.prisma, user.id, GOOGLE_AMR, LOGIN_CODE_TTL_S);
      return { kind: 'redirect', location: withFragment(returnTo, 'login_code', code) };
    }
    return { kind: 'json', body: await this.mfa.finishFirstFactor(user, GOOGLE_AMR, client) };
  }

  async exchange(loginCode: string, client: ClientInfo): Promise<SignInResult> {
    this.authorization.assertEnabled();
    const redeemed = await this.loginCodes.consume(this.prisma, loginCode);
    if (redeemed === null) throw new AppError('invalid_grant', { logReason: 'login_code unknown, used or expired' });
    const { user } = redeemed;
    if (user.status !== 'active') throw new AppError('account_disabled');
    return this.mfa.finishFirstFactor(user, redeemed.amr, client);
  }
}
