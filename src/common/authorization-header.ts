import { AppError } from './app-error';

/**
 * How many times a header was sent. Node keeps only the first Authorization header and drops
 * the others silently; a proxy in front may have read the other one, so two are refused.
 */
export function headerCount(rawHeaders: readonly string[], name: string): number {
  let count = 0;
  for (let index = 0; index < rawHeaders.length; index += 2) if (rawHeaders[index]!.toLowerCase() === name) count += 1;
  return count;
}

export function duplicateAuthorizationError(): AppError {
  return new AppError('validation_failed', {
    detail: 'The request has invalid fields.',
    errors: [{ path: 'authorization', message: 'must be sent at most once' }],
    logReason: 'several Authorization headers',
  });
}
