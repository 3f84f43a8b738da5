import { Inject, Injectable } from '@nestjs/common';
import {
  allowInsecureRequests,
  AuthorizationResponseError,
  authorizationCodeGrant,
  buildAuthorizationUrl,
  calculatePKCECodeChallenge,
  ClientError,
  discovery,
  enableNonRepudiationChecks,
  randomNonce,
  randomPKCECodeVerifier,
  randomState,
  ResponseBodyError,
  type Configuration,
  type IDToken,
} from 'openid-client';
import type { Logger } from 'pino';
import { AppError } from '../../common/app-error';
import { APP_CONFIG, type AppConfig } from '../../config/config';
import { LOGGER } from '../../observability/logger';
import { MetricsService } from '../../observability/metrics.service';

export interface AuthorizationRequest {
  url: string;
  state: string;
  nonce: string;
  codeVerifier: string;
}

/** What we keep from a validated ID token. */
export interface ExternalClaims {
  issuer: string;
  subject: string;
  email?: string;
  emailVerified: boolean;
  name?: string;
}

// The provider answered, but about this grant: the user's problem, not an outage.
const GRANT_ERRORS = new Set(['invalid_grant', 'access_denied', 'invalid_request', 'consent_required', 'login_required']);
// Our checks of a well-formed reply failed (nonce, issuer, audience, expiry, iss parameter).
const CHECK_FAILURES = new Set([
  'OAUTH_JWT_CLAIM_COMPARISON_FAILED',
  'OAUTH_JWT_TIMESTAMP_CHECK_FAILED',
  'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED',
  // the ID token names a kid the provider's JWKS does not hold
  'OAUTH_KEY_SELECTION_FAILED',
]);
// how far a provider's clock may run ahead of ours before its ID token's iat is refused
const IAT_SKEW_S = 30;

/**
 * Google as an OpenID provider, through openid-client: discovery (cached once it succeeds),
 * authorization URLs with PKCE S256 + state + nonce, and the code exchange with ID-token
 * validation (signature, iss, aud, exp, nonce). Provider failures become 502/504; a bad
 * grant or a failed ID-token check becomes 401 invalid_grant.
 */
@Injectable()
export class GoogleOidcClient {
  readonly enabled: boolean;
  private configuration: Promise<Configuration> | undefined;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly metrics: MetricsService,
  ) {
    this.enabled =
      config.OIDC_GOOGLE_CLIENT_ID !== undefined &&
      config.OIDC_GOOGLE_CLIENT_SECRET !== undefined &&
      config.OIDC_GOOGLE_REDIRECT_URI !== undefined;
  }

  get issuer(): string {
    return this.config.OIDC_GOOGLE_ISSUER;
  }

  async authorizationRequest(): Promise<AuthorizationRequest> {
    const configuration = await this.discover();
    const state = randomState();
    const nonce = randomNonce();
    const codeVerifier = randomPKCECodeVerifier();
    const url = buildAuthorizationUrl(configuration, {
      redirect_uri: this.config.OIDC_GOOGLE_REDIRECT_URI!,
      response_type: 'code',
      scope: 'openid email profile',
      state,
      nonce,
      code_challenge: await calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
    });
    return { url: url.href, state, nonce, codeVerifier };
  }

  /** Redeems the authorization response (the callback's query string) and validates the ID token. */
  async redeem(callbackQuery: string, checks: { state: string; nonce: string; codeVerifier: string }): Promise<ExternalClaims> {
    const configuration = await this.discover();
    const currentUrl = new URL(this.config.OIDC_GOOGLE_REDIRECT_URI!);
    currentUrl.search = callbackQuery;
    try {
      const tokens = await authorizationCodeGrant(configuration, currentUrl, {
        pkceCodeVerifier: checks.codeVerifier,
        expectedState: checks.state,
        expectedNonce: checks.nonce,
        idTokenExpected: true,
      });
      const claims = tokens.claims();
      if (claims === undefined) throw new AppError('upstream_unavailable', { logReason: 'oidc: token response without id_token' });
      this.assertClaimsBeyondLibrary(configuration, claims);
      this.metrics.upstreamRequests.inc({ service_kind: 'oidc', outcome: 'ok' });
      return {
        issuer: claims.iss,
        subject: claims.sub,
        email: typeof claims.email === 'string' ? claims.email : undefined,
        // Google sends a boolean; anything else is not a verification
        emailVerified: claims.email_verified === true,
        name: typeof claims.name === 'string' && claims.name.trim() !== '' ? claims.name.trim().slice(0, 200) : undefined,
      };
    } catch (error) {
      throw this.failure(error, 'code exchange');
    }
  }

  /**
   * What openid-client leaves to us: it checks iss against the discovered issuer, aud, exp,
   * nonce and (with non-repudiation checks on) the signature, but accepts an iat in the future
   * and an azp naming another client when aud has one member.
   */
  private assertClaimsBeyondLibrary(configuration: Configuration, claims: IDToken): void {
    const refuse = (why: string) => new AppError('invalid_grant', { logReason: `oidc code exchange: ID token check failed: ${why}` });
    if (claims.iss !== configuration.serverMetadata().issuer || claims.iss !== this.config.OIDC_GOOGLE_ISSUER) {
      throw refuse(`iss ${claims.iss} is not exactly the configured issuer`);
    }
    if (typeof claims.iat !== 'number' || claims.iat > Date.now() / 1000 + IAT_SKEW_S) throw refuse('iat in the future');
    if (claims.azp !== undefined && claims.azp !== this.config.OIDC_GOOGLE_CLIENT_ID) throw refuse('azp names another client');
  }

  private discover(): Promise<Configuration> {
    this.configuration ??= discovery(
      new URL(this.config.OIDC_GOOGLE_ISSUER),
      this.config.OIDC_GOOGLE_CLIENT_ID!,
      this.config.OIDC_GOOGLE_CLIENT_SECRET!,
      undefined,
      {
        // plain http only for a local test issuer; Google itself is https
        execute: new URL(this.config.OIDC_GOOGLE_ISSUER).protocol === 'http:' ? [allowInsecureRequests] : [],
        timeout: Math.max(1, Math.ceil(this.config.UPSTREAM_TIMEOUT_MS / 1000)),
      },
    )
      .then((configuration) => {
        // without this openid-client 6 trusts the ID token's signature to TLS alone
        enableNonRepudiationChecks(configuration);
        return configuration;
      })
      .catch((error: unknown) => {
        // a failed discovery is retried by the next request, never cached
        this.configuration = undefined;
        throw this.failure(error, 'discovery');
      });
    return this.configuration;
  }

  private failure(error: unknown, step: string): AppError {
    if (error instanceof AppError) {
      if (error.code !== 'invalid_grant') this.metrics.upstreamRequests.inc({ service_kind: 'oidc', outcome: 'error' });
      return error;
    }
    const reason = describe(error);
    if (error instanceof AuthorizationResponseError) {
      return new AppError('invalid_grant', { detail: 'The Google sign-in was not completed.', logReason: `oidc ${step}: ${reason}` });
    }
    if (error instanceof ResponseBodyError && error.status < 500 && GRANT_ERRORS.has(error.error)) {
      return new AppError('invalid_grant', { logReason: `oidc ${step}: ${reason}` });
    }
    if (error instanceof ClientError && error.code !== undefined && CHECK_FAILURES.has(error.code)) {
      return new AppError('invalid_grant', { logReason: `oidc ${step}: ID token check failed: ${reason}` });
    }
    // a forged or corrupted signature, or an HMAC "signature" keyed with public data
    if (
      error instanceof ClientError &&
      (/signature verification failed/i.test(`${error.message} ${causeMessage(error)}`) || error.code === 'OAUTH_UNSUPPORTED_OPERATION')
    ) {
      return new AppError('invalid_grant', { logReason: `oidc ${step}: ID token signature refused: ${reason}` });
    }
    // openid-client reports its own timeout as ClientError OAUTH_TIMEOUT (cause: the AbortSignal's TimeoutError)
    const timedOut =
      error instanceof Error &&
      (error.name === 'TimeoutError' || error.name === 'AbortError' || (error as { code?: unknown }).code === 'OAUTH_TIMEOUT');
    this.metrics.upstreamRequests.inc({ service_kind: 'oidc', outcome: timedOut ? 'timeout' : 'error' });
    this.logger.warn({ step, reason }, 'oidc provider call failed');
    return new AppError(timedOut ? 'upstream_timeout' : 'upstream_unavailable', { logReason: `oidc ${step}: ${reason}` });
  }
}

function causeMessage(error: Error): string {
  return error.cause instanceof Error ? error.cause.message : '';
}

/** For the log only: error class, code and message, plus the network cause when there is one. */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  const cause = error.cause instanceof Error ? ` (cause: ${error.cause.message})` : '';
  // the provider's own OAuth error code and status, e.g. invalid_grant / 400
  const oauth = error instanceof ResponseBodyError ? ` [${error.error} ${error.status}]` : '';
  return `${error.name}${typeof code === 'string' ? ` ${code}` : ''}: ${error.message}${oauth}${cause}`;
}
