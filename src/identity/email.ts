import { z } from 'zod';

/** CONTRACT §4: trim, NFKC, lower-case. */
export function normalizeEmail(email: string): string {
  return email.trim().normalize('NFKC').toLowerCase();
}

/** RFC 5321 §4.5.3.1: a path holds at most 254 octets of address, a local part at most 64. */
export const MAX_EMAIL_OCTETS = 254;
export const MAX_LOCAL_PART_OCTETS = 64;

export const emailField = z
  .string()
  .max(320, 'must be at most 320 characters')
  .transform(normalizeEmail)
  .pipe(
    z
      .email('must be an email address')
      .refine((email) => Buffer.byteLength(email, 'utf8') <= MAX_EMAIL_OCTETS, `must be at most ${MAX_EMAIL_OCTETS} octets`)
      .refine(
        (email) => Buffer.byteLength(email.slice(0, email.lastIndexOf('@')), 'utf8') <= MAX_LOCAL_PART_OCTETS,
        `its local part must be at most ${MAX_LOCAL_PART_OCTETS} octets`,
      ),
  );
