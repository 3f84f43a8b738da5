import { dictionary } from '@zxcvbn-ts/language-common';
import { z } from 'zod';
import { AppError } from '../common/app-error';

export const PASSWORD_MIN = 15;
export const PASSWORD_MAX = 256;

const common = new Set<string>((dictionary['passwords-common'] as string[]).map((entry) => entry.toLowerCase()));

/** NFKC before counting and hashing (NIST SP 800-63B-4); never truncated. */
export function normalizePassword(password: string): string {
  return password.normalize('NFKC');
}

/** Returns why the password is refused, or undefined. Length counts Unicode code points. */
export function passwordProblem(password: string, email?: string): string | undefined {
  const normalized = normalizePassword(password);
  const length = [...normalized].length;
  if (length < PASSWORD_MIN) return `must be at least ${PASSWORD_MIN} characters`;
  if (length > PASSWORD_MAX) return `must be at most ${PASSWORD_MAX} characters`;
  if (common.has(normalized.toLowerCase())) return 'is a commonly used password';
  const localPart = email?.split('@')[0]?.toLowerCase();
  if (localPart !== undefined && localPart.length >= 3 && normalized.toLowerCase().includes(localPart)) {
    return 'must not contain the email address';
  }
  return undefined;
}

/** A password field whose length is bounded before any hashing; policy checked with the email by the caller. */
export const passwordField = z
  .string()
  .min(1, 'is required')
  .max(PASSWORD_MAX * 4, `must be at most ${PASSWORD_MAX} characters`);

/** Throws 400 validation_failed naming the reason when the password breaks the policy. */
export function assertPasswordAllowed(password: string, email: string, path = 'password'): void {
  const problem = passwordProblem(password, email);
  if (problem !== undefined) {
    throw new AppError('validation_failed', { detail: `The password ${problem}.`, errors: [{ path, message: `password ${problem}` }] });
  }
}
