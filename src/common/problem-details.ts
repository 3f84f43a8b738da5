import type { FieldError } from './app-error';
import { httpStatusOf, titleOf, type ErrorCode } from './error-codes';

export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  code: ErrorCode;
  request_id: string;
  detail?: string;
  errors?: FieldError[];
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export function problemOf(
  code: ErrorCode,
  requestId: string,
  detail?: string,
  errors?: FieldError[],
  extra: { status?: number; extensions?: Record<string, unknown> } = {},
): ProblemDetails {
  // extension members first, so they can never overwrite a standard member
  const body: ProblemDetails = {
    ...extra.extensions,
    type: `urn:gatehouse:error:${code}`,
    title: titleOf(code),
    status: extra.status ?? httpStatusOf(code),
    code,
    request_id: requestId,
  };
  if (detail !== undefined) body.detail = detail;
  if (code === 'validation_failed' && errors !== undefined) body.errors = errors;
  return body;
}
