import type { User } from '../generated/prisma/client';

export interface UserView {
  id: string;
  email: string;
  email_verified: boolean;
  display_name: string | null;
}

export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  refresh_token: string;
  session_id: string;
  user: UserView;
}

export function userView(user: User): UserView {
  return { id: user.id, email: user.email, email_verified: user.emailVerifiedAt !== null, display_name: user.displayName };
}
