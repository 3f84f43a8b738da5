import { ZxcvbnFactory } from '@zxcvbn-ts/core';
import { adjacencyGraphs, dictionary } from '@zxcvbn-ts/language-common';
import { z } from 'zod';
import { AppError } from '../common/app-error';

export const PASSWORD_MIN = 15;
export const PASSWORD_MAX = 256;

const common = new Set<string>((dictionary['passwords-common'] as string[]).map((entry) => entry.toLowerCase()));

// zxcvbn's score 3 = "safely unguessable: moderate protection from offline slow-hash scenario"
export const PASSWORD_MIN_SCORE = 3;
// zxcvbn's matching grows fast with length and runs on the event loop; the first 64 characters
// decide (a longer password that is weak in its first 64 characters is weak)
const STRENGTH_CHECKED_LENGTH = 64;
let strength: ZxcvbnFactory | undefined;
function strengthChecker(): ZxcvbnFactory {
  strength ??= new ZxcvbnFactory({ dictionary: { ...dictionary }, graphs: adjacencyGraphs, maxLength: STRENGTH_CHECKED_LENGTH });
  return strength;
}

const WARNINGS: Record<string, string> = {
  straightRow: 'is a row of keys',
  keyPattern: 'is a keyboard pattern',
  simpleRepeat: 'repeats characters',
  extendedRepeat: 'repeats a pattern',
  sequences: 'is a sequence',
  recentYears: 'is mostly a recent year',
  dates: 'is mostly a date',
  topTen: 'is a very common password',
  topHundred: 'is a very common password',
  common: 'is a commonly used password',
  similarToCommon: 'is too close to a commonly used password',
  wordByItself: 'is a single word',
  namesByThemselves: 'is only names',
  commonNames: 'is only common names',
  userInputs: 'is made of your email address or name',
  pwned: 'is a commonly used password',
};

/** NFKC before counting and hashing (NIST SP 800-63B-4); never truncated. */
export function normalizePassword(password: string): string {
  return password.normalize('NFKC');
}

/**
 * Returns why the password is refused, or undefined. Length counts Unicode code points. The
 * strength estimate takes the email's local part and the display name as user inputs.
 */
export function passwordProblem(password: string, email?: string, displayName?: string | null): string | undefined {
  const normalized = normalizePassword(password);
  const length = [...normalized].length;
  if (length < PASSWORD_MIN) return `must be at least ${PASSWORD_MIN} characters`;
  if (length > PASSWORD_MAX) return `must be at most ${PASSWORD_MAX} characters`;
  if (common.has(normalized.toLowerCase())) return 'is a commonly used password';
  const localPart = email?.split('@')[0]?.toLowerCase();
  if (localPart !== undefined && localPart.length >= 3 && normalized.toLowerCase().includes(localPart)) {
    return 'must not contain the email address';
  }
  const userInputs = [localPart, ...(displayName ?? '').split(/\s+/), displayName ?? ''].filter(
    (input): input is string => input !== undefined && input.length >= 3,
  );
  const result = strengthChecker().check(normalized, userInputs);
  if (result.score < PASSWORD_MIN_SCORE) {
    const reason = WARNINGS[result.feedback.warning ?? ''] ?? 'is too easy to guess';
    return `${reason}; choose a longer phrase of unrelated words`;
  }
  return undefined;
}

/** A password field whose length is bounded before any hashing; policy checked with the email by the caller. */
export const passwordField = z
  .string()
  .min(1, 'is required')
  .max(PASSWORD_MAX * 4, `must be at most ${PASSWORD_MAX} characters`);

/** Throws 400 validation_failed naming the reason when the password breaks the policy. */
export function assertPasswordAllowed(password: string, email: string, path = 'password', displayName?: string | null): void {
  const problem = passwordProblem(password, email, displayName);
  if (problem !== undefined) {
    throw new AppError('validation_failed', { detail: `The password ${problem}.`, errors: [{ path, message: `password ${problem}` }] });
  }
}
