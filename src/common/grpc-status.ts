import { status } from '@grpc/grpc-js';
import type { ErrorCode } from './error-codes';

/** The gRPC edge of the error mapping. Adding an error code without a status here does not compile. */
export function grpcStatusOf(code: ErrorCode): status {
  switch (code) {
    case 'unauthenticated':
    case 'invalid_token':
    case 'invalid_credentials':
    case 'invalid_grant':
    case 'mfa_invalid':
      return status.UNAUTHENTICATED;
    case 'forbidden':
    case 'tenant_forbidden':
    case 'account_disabled':
    case 'mfa_required':
    case 'reauth_required':
      return status.PERMISSION_DENIED;
    case 'tenant_required':
    case 'invalid_tenant_id':
    case 'validation_failed':
    case 'malformed_json':
      return status.INVALID_ARGUMENT;
    case 'tenant_not_routed':
    case 'not_found':
      return status.NOT_FOUND;
    case 'method_not_allowed':
      return status.UNIMPLEMENTED;
    case 'request_timeout':
      return status.DEADLINE_EXCEEDED;
    case 'upstream_timeout':
      return status.DEADLINE_EXCEEDED;
    case 'upstream_unavailable':
    case 'circuit_open':
    case 'unavailable':
      return status.UNAVAILABLE;
    case 'rate_limited':
      return status.RESOURCE_EXHAUSTED;
    case 'conflict':
    case 'email_taken':
    case 'link_requires_signin':
    case 'target_not_ready':
    case 'payload_too_large':
    case 'unsupported_media_type':
    case 'internal_error':
      return status.INTERNAL;
  }
}
