import { Inject, Injectable } from '@nestjs/common';
import { AppError } from '../../common/app-error';
import { SecretBox } from '../../common/secret-box';
import { APP_CONFIG, type AppConfig } from '../../config/config';
import { PrismaService } from '../../database/prisma.service';
import { BrowserBinding } from './browser-binding';
import { GoogleOidcClient, type ExternalClaims } from './google-oidc.client';
import { OidcStateRepository } from './oidc-state.repository';
import { isAllowedReturnTo } from './return-to';

/** The purpose under which OIDC states are sealed with MASTER_KEY. */
export const OIDC_STATE_PURPOSE = 'oidc-state';

const STATE_TTL_S = 10 * 60;

interface SealedChecks {
  nonce: string;
  codeVerifier: string;
  /** sha256 of the browser-binding cookie's value (absent in states from before the binding) */
  bindingHash?: string;
}

export interface CompletedAuthorization {
  claims: ExternalClaims;
  returnTo: string | null;
  linkUserId: string | null;
}

/**
 * Both ends of one authorization request. `begin` keeps state, nonce and PKCE verifier in
 * PostgreSQL (so the callback may land on any replica); `complete` spends the state once and
 * redeems the code. Nothing is stored when the provider cannot be reached.
 */
@Injectable()
export class OidcAuthorizationService {
  private readonly box: SecretBox;

  constructor(
    private readonly prisma: PrismaService,
    private readonly client: GoogleOidcClient,
    private readonly states: OidcStateRepository,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    this.box = new SecretBox(config.MASTER_KEY, OIDC_STATE_PURPOSE, config.MASTER_KEY_PREVIOUS);
  }

  /** Unconfigured Google sign-in does not exist as far as clients can tell. */
  assertEnabled(): void {
    if (!this.client.enabled) throw new AppError('not_found', { logReason: 'google sign-in is not configured' });
  }

  /** `binding` is the value of the browser's binding cookie; only its hash is kept (sealed with the state). */
  async begin(input: { returnTo?: string; linkUserId?: string; binding: string }): Promise<string> {
    this.assertEnabled();
    if (input.returnTo !== undefined && !isAllowedReturnTo(input.returnTo, this.config.OIDC_RETURN_TO_ALLOWLIST)) {
      throw new AppError('validation_failed', {
        detail: 'return_to is not an allowed address.',
        errors: [{ path: 'return_to', message: 'must start with one of the allowed return addresses' }],
      });
    }
    const request = await this.client.authorizationRequest();
    const checks: SealedChecks = {
      nonce: request.nonce,
      codeVerifier: request.codeVerifier,
      bindingHash: BrowserBinding.hash(input.binding),
    };
    await this.states.create(this.prisma, {
      state: request.state,
      sealed: this.box.seal(JSON.stringify(checks)),
      returnTo: input.returnTo,
      linkUserId: input.linkUserId,
      ttlSeconds: STATE_TTL_S,
    });
    return request.url;
  }

  /**
   * `callbackQuery` is the callback's raw query string, handed to openid-client as received;
   * `binding` the browser's binding cookie. A state presented by another browser is spent
   * without redeeming its code: whoever sent that URL around loses the flow.
   */
  async complete(state: string, callbackQuery: string, binding: string | undefined): Promise<CompletedAuthorization> {
    this.assertEnabled();
    const row = await this.states.consume(this.prisma, state);
    if (row === null) throw new AppError('invalid_grant', { logReason: 'oidc state unknown, used or expired' });
    const checks = JSON.parse(this.box.open(row.sealed)) as SealedChecks;
    if (!BrowserBinding.matches(checks.bindingHash, binding)) {
      throw new AppError('invalid_grant', {
        detail: 'This sign-in was started in another browser.',
        logReason: binding === undefined ? 'oidc callback without the browser-binding cookie' : 'oidc callback with another flow cookie',
      });
    }
    try {
      const claims = await this.client.redeem(callbackQuery, { state, nonce: checks.nonce, codeVerifier: checks.codeVerifier });
      return { claims, returnTo: row.returnTo, linkUserId: row.linkUserId };
    } catch (error) {
      if (error instanceof AppError && (error.code === 'upstream_unavailable' || error.code === 'upstream_timeout')) {
        // the code was not redeemed: let the same callback be tried again once the provider is back
        await this.states.release(this.prisma, row.id, row.usedAt!);
      }
      throw error;
    }
  }
}
