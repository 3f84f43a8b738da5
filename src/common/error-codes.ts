/** Every error code of the contract (CONTRACT.md §1). Adding one without a status mapping does not compile. */
export type ErrorCode =
  | 'validation_failed'
  | 'malformed_json'
  | 'tenant_required'
  | 'invalid_tenant_id'
  | 'unauthenticated'
  | 'invalid_token'
  | 'invalid_credentials'
  | 'invalid_grant'
  | 'mfa_invalid'
  | 'forbidden'
  | 'tenant_forbidden'
  | 'account_disabled'
  | 'mfa_required'
  | 'reauth_required'
  | 'not_found'
  | 'tenant_not_routed'
  | 'method_not_allowed'
  | 'request_timeout'
  | 'conflict'
  | 'email_taken'
  | 'link_requires_signin'
  | 'target_not_ready'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'rate_limited'
  | 'upstream_unavailable'
  | 'unavailable'
  | 'circuit_open'
  | 'upstream_timeout'
  | 'internal_error';

export function httpStatusOf(code: ErrorCode): number {
  switch (code) {
    case 'validation_failed':
    case 'malformed_json':
    case 'tenant_required':
    case 'invalid_tenant_id':
      return 400;
    case 'unauthenticated':
    case 'invalid_token':
    case 'invalid_credentials':
    case 'invalid_grant':
    case 'mfa_invalid':
      return 401;
    case 'forbidden':
    case 'tenant_forbidden':
    case 'account_disabled':
    case 'mfa_required':
    case 'reauth_required':
      return 403;
    case 'not_found':
    case 'tenant_not_routed':
      return 404;
    case 'method_not_allowed':
      return 405;
    case 'request_timeout':
      return 408;
    case 'conflict':
    case 'email_taken':
    case 'link_requires_signin':
    case 'target_not_ready':
      return 409;
    case 'payload_too_large':
      return 413;
    case 'unsupported_media_type':
      return 415;
    case 'rate_limited':
      return 429;
    case 'upstream_unavailable':
      return 502;
    case 'unavailable':
    case 'circuit_open':
      return 503;
    case 'upstream_timeout':
      return 504;
    case 'internal_error':
      return 500;
  }
}

export function titleOf(code: ErrorCode): string {
  switch (code) {
    case 'validation_failed':
      return 'Request validation failed';
    case 'malformed_json':
      return 'Malformed JSON body';
    case 'tenant_required':
      return 'x-tenant-id header required';
    case 'invalid_tenant_id':
      return 'Invalid tenant id';
    case 'unauthenticated':
      return 'Authentication required';
    case 'invalid_token':
      return 'Invalid token';
    case 'invalid_credentials':
      return 'Invalid credentials';
    case 'invalid_grant':
      return 'Invalid grant';
    case 'mfa_invalid':
      return 'Invalid MFA code';
    case 'forbidden':
      return 'Forbidden';
    case 'tenant_forbidden':
      return 'No access to this tenant';
    case 'account_disabled':
      return 'Account disabled';
    case 'mfa_required':
      return 'A second factor is required for this action';
    case 'reauth_required':
      return 'A recent sign-in is required for this action';
    case 'not_found':
      return 'Not found';
    case 'tenant_not_routed':
      return 'Tenant not routed';
    case 'method_not_allowed':
      return 'Method not allowed';
    case 'request_timeout':
      return 'Request timeout';
    case 'conflict':
      return 'Conflict';
    case 'email_taken':
      return 'Email already registered';
    case 'link_requires_signin':
      return 'Sign in to link this identity';
    case 'target_not_ready':
      return 'Target not ready';
    case 'payload_too_large':
      return 'Payload too large';
    case 'unsupported_media_type':
      return 'Unsupported media type';
    case 'rate_limited':
      return 'Too many requests';
    case 'upstream_unavailable':
      return 'Upstream unavailable';
    case 'unavailable':
      return 'Service unavailable';
    case 'circuit_open':
      return 'Upstream circuit open';
    case 'upstream_timeout':
      return 'Upstream timeout';
    case 'internal_error':
      return 'Internal error';
  }
}
