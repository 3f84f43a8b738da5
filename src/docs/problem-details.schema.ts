import { z } from 'zod';
import type { ErrorCode } from '../common/error-codes';

// A Record over the ErrorCode union: adding a code without listing it here does not compile.
const ERROR_CODES: Record<ErrorCode, true> = {
  validation_failed: true,
  malformed_json: true,
  tenant_required: true,
  invalid_tenant_id: true,
  unauthenticated: true,
  invalid_token: true,
  invalid_credentials: true,
  invalid_grant: true,
  mfa_invalid: true,
  forbidden: true,
  tenant_forbidden: true,
  account_disabled: true,
  mfa_required: true,
  reauth_required: true,
  not_found: true,
  tenant_not_routed: true,
  method_not_allowed: true,
  request_timeout: true,
  conflict: true,
  email_taken: true,
  link_requires_signin: true,
  target_not_ready: true,
  payload_too_large: true,
  unsupported_media_type: true,
  rate_limited: true,
  upstream_unavailable: true,
  unavailable: true,
  circuit_open: true,
  upstream_timeout: true,
  internal_error: true,
};

/** RFC 9457 problem details, the body of every non-2xx response Gatehouse produces (CONTRACT §1). */
export const problemDetailsSchema = z.object({
  type: z.string().describe('urn:gatehouse:error:<code>'),
  title: z.string().describe('short human summary'),
  status: z.number().int().describe('the HTTP status'),
  code: z.enum(Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]]),
  request_id: z.string().describe('also in the x-request-id response header'),
  detail: z.string().optional(),
  errors: z
    .array(z.object({ path: z.string(), message: z.string() }))
    .optional()
    .describe('only for validation_failed: which fields failed and why'),
});
