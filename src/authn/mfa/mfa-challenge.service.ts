import { Injectable } from '@nestjs/common';
import { z } from 'zod';
import { PrismaService } from '../../database/prisma.service';
import type { User } from '../../generated/prisma/client';
import { SessionService, type ClientInfo } from '../../session/session.service';
import { tokenResponseSchema, type TokenResponse } from '../../session/token-response';
import { MfaChallengeRepository } from './mfa-challenge.repository';
import { TotpCredentialRepository } from './totp-credential.repository';

/** CONTRACT §3: the answer to a first factor when a second one is due. */
export const mfaPendingSchema = z
  .object({ mfa_required: z.literal(true), mfa_token: z.string(), mfa_methods: z.array(z.enum(['totp', 'recovery_code'])) })
  .meta({ id: 'MfaPending' });
export type MfaPendingResponse = z.infer<typeof mfaPendingSchema>;

/** What a first factor (password, Google) answers: tokens, or MFA-pending. */
export const signInResultSchema = z.union([tokenResponseSchema, mfaPendingSchema]);
export type SignInResult = z.infer<typeof signInResultSchema>;

const MFA_TOKEN_TTL_S = 5 * 60;

/**
 * What follows a first factor (password, Google): the MFA-pending answer with a fresh
 * `mfa_token` when the user has a confirmed TOTP, a session otherwise. No first factor
 * bypasses local MFA.
 */
@Injectable()
export class MfaChallengeService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly totp: TotpCredentialRepository,
    private readonly challenges: MfaChallengeRepository,
    private readonly sessions: SessionService,
  ) {}

  /** MFA-pending when the user has a confirmed TOTP, null when the first factor suffices. */
  async challengeIfEnrolled(user: { id: string; totpConfirmed?: boolean }, firstFactorAmr: string[]): Promise<MfaPendingResponse | null> {
    // a caller that read it along with the account (password sign-in) saves the query
    if (!(user.totpConfirmed ?? (await this.totp.isConfirmed(this.prisma, user.id)))) return null;
    const token = await this.challenges.issue(this.prisma, user.id, firstFactorAmr, MFA_TOKEN_TTL_S);
    return { mfa_required: true, mfa_token: token, mfa_methods: ['totp', 'recovery_code'] };
  }

  async finishFirstFactor(user: User, amr: string[], client: ClientInfo): Promise<TokenResponse | MfaPendingResponse> {
    const pending = await this.challengeIfEnrolled(user, amr);
    if (pending !== null) return pending;
    return this.sessions.startSignedIn({ user, amr, client });
  }
}
