import type { ErrorCode } from './error-codes';

/**
 * The standard OAuth endpoints (CONTRACT §12). Their errors are `application/json` carrying the
 * problem members plus RFC 6749's `error`, so standard OAuth clients can read them.
 */
export const OAUTH_ROUTES: ReadonlySet<string> = new Set(['/v1/auth/token', '/v1/auth/introspect', '/v1/auth/revoke']);

/** RFC 6749 §5.2 error codes (and RFC 7009's), as Gatehouse uses them. */
export type OAuthError =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'unsupported_token_type'
  | 'temporarily_unavailable'
  | 'server_error';

/** The `error` member for a contract code; a handler may name a more precise one (unsupported_grant_type). */
export function oauthErrorOf(code: ErrorCode): OAuthError {
  switch (code) {
    case 'invalid_credentials':
    case 'invalid_token':
    case 'unauthenticated':
      return 'invalid_client';
    case 'invalid_grant':
    case 'mfa_invalid':
      return 'invalid_grant';
    case 'forbidden':
    case 'tenant_forbidden':
    case 'account_disabled':
      return 'unauthorized_client';
    case 'rate_limited':
    case 'unavailable':
    case 'circuit_open':
    case 'upstream_unavailable':
    case 'upstream_timeout':
      return 'temporarily_unavailable';
    case 'internal_error':
      return 'server_error';
    default:
      return 'invalid_request';
  }
}
