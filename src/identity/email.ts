import { z } from 'zod';

/** CONTRACT §4: trim, NFKC, lower-case. */
export function normalizeEmail(email: string): string {
  return email.trim().normalize('NFKC').toLowerCase();
}

export const emailField = z
  .string()
  .max(320, 'must be at most 320 characters')
  .transform(normalizeEmail)
  .pipe(z.email('must be an email address'));
