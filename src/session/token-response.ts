import { z } from 'zod';
import type { User } from '../generated/prisma/client';

/** The user as sign-in answers and `/me` show it (CONTRACT §3): the OpenAPI schema and the TypeScript type come from here. */
export const userSchema = z.object({ id: z.string(), email: z.string(), email_verified: z.boolean(), display_name: z.string().nullable() });
export type UserView = z.infer<typeof userSchema>;

export const tokenResponseSchema = z
  .object({
    access_token: z.string().describe('ES256 JWT, typ at+jwt'),
    token_type: z.literal('Bearer'),
    expires_in: z.number().int(),
    refresh_token: z.string().describe('opaque, single use: each refresh rotates it'),
    session_id: z.string(),
    user: userSchema,
  })
  .meta({ id: 'TokenResponse' });
export type TokenResponse = z.infer<typeof tokenResponseSchema>;

export function userView(user: Pick<User, 'id' | 'email' | 'emailVerifiedAt' | 'displayName'>): UserView {
  return { id: user.id, email: user.email, email_verified: user.emailVerifiedAt !== null, display_name: user.displayName };
}
