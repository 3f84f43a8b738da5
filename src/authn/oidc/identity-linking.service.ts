import { Injectable } from '@nestjs/common';
import { z } from 'zod';
import { AuditService } from '../../audit/audit.service';
import { AppError } from '../../common/app-error';
import { PrismaService } from '../../database/prisma.service';
import { isUniqueViolation, type Db } from '../../database/transaction';
import type { ExternalIdentity, User } from '../../generated/prisma/client';
import { AccountNotices } from '../../identity/account-notices.service';
import { normalizeEmail } from '../../identity/email';
import { UserRepository } from '../../identity/user.repository';
import type { ExternalClaims } from './google-oidc.client';
import { ExternalIdentityRepository } from './external-identity.repository';

export const identitySchema = z
  .object({
    id: z.string(),
    provider: z.literal('google'),
    issuer: z.string(),
    subject: z.string(),
    email: z.string().nullable(),
    email_verified: z.boolean(),
    created_at: z.string(),
    last_sign_in_at: z.string().nullable(),
  })
  .meta({ id: 'ExternalIdentity' });
export type IdentityView = z.infer<typeof identitySchema>;

export const identityListSchema = z.object({ items: z.array(identitySchema), next_cursor: z.null() }).meta({ id: 'ExternalIdentityList' });

export function identityView(identity: ExternalIdentity): IdentityView {
  return {
    id: identity.id,
    provider: 'google',
    issuer: identity.issuer,
    subject: identity.subject,
    email: identity.email,
    email_verified: identity.emailVerified,
    created_at: identity.createdAt.toISOString(),
    last_sign_in_at: identity.lastSignInAt?.toISOString() ?? null,
  };
}

type SignInOutcome = 'existing' | 'linked_by_email' | 'created';

/**
 * CONTRACT §4 linking rule. A known (issuer, subject) is that user. Otherwise a local account
 * with the same email is linked only when both Google and we have verified the address;
 * anything less would let whoever controls a Google account with that (unverified) address
 * take over the local account, so the owner must sign in and link explicitly. Otherwise a
 * new user is created.
 */
@Injectable()
export class IdentityLinkingService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly users: UserRepository,
    private readonly identities: ExternalIdentityRepository,
    private readonly audit: AuditService,
    private readonly notices: AccountNotices,
  ) {}

  async userForSignIn(claims: ExternalClaims): Promise<User> {
    try {
      return await this.resolve(claims);
    } catch (error) {
      // two first sign-ins racing (same subject or same email): the loser finds the winner's rows
      if (isUniqueViolation(error)) return this.resolve(claims);
      throw error;
    }
  }

  /** Links the identity to a signed-in user (link/start flow); idempotent for that same user. */
  async linkToUser(userId: string, claims: ExternalClaims): Promise<ExternalIdentity> {
    const user = await this.users.findById(this.prisma, userId);
    if (user === null) throw new AppError('invalid_grant', { logReason: 'linking user no longer exists' });
    if (user.status !== 'active') throw new AppError('account_disabled');
    const known = await this.identities.findBySubject(this.prisma, claims.issuer, claims.subject);
    if (known !== null) {
      if (known.userId !== userId) {
        throw new AppError('conflict', { detail: 'This Google account is already linked to another user.' });
      }
      return known;
    }
    try {
      const identity = await this.prisma.$transaction(async (tx) => {
        const created = await this.identities.create(tx, { userId, ...claims });
        await this.recordLinked(tx, userId, created, 'signed_in');
        return created;
      });
      this.notices.send(user.email, 'google_linked');
      return identity;
    } catch (error) {
      if (isUniqueViolation(error)) throw new AppError('conflict', { detail: 'This Google account is already linked.' });
      throw error;
    }
  }

  listForUser(userId: string): Promise<ExternalIdentity[]> {
    return this.identities.listForUser(this.prisma, userId);
  }

  /** Removes an identity unless it is the user's last way to sign in (no password, no other identity). */
  async unlink(userId: string, identityId: string): Promise<void> {
    const email = await this.prisma.$transaction(async (tx) => {
      // serializes concurrent unlinks of one user, so two cannot each leave the other as "the last"
      await tx.$queryRaw`SELECT id FROM users WHERE id = ${userId} FOR UPDATE`;
      const identity = await this.identities.findForUser(tx, userId, identityId);
      if (identity === null) throw new AppError('not_found');
      const hasPassword = await this.users.hasPassword(tx, userId);
      if (!hasPassword && (await this.identities.countForUser(tx, userId)) <= 1) {
        throw new AppError('conflict', { detail: 'This is the last way to sign in to the account; add another one first.' });
      }
      await this.identities.delete(tx, identity.id);
      await this.audit.record(tx, {
        action: 'identity.unlinked',
        target: { type: 'user', id: userId },
        changes: { identity_id: identity.id, issuer: identity.issuer },
      });
      return (await this.users.findById(tx, userId))?.email;
    });
    if (email !== undefined) this.notices.send(email, 'google_unlinked');
  }

  private async resolve(claims: ExternalClaims): Promise<User> {
    const known = await this.identities.findBySubject(this.prisma, claims.issuer, claims.subject);
    if (known !== null) {
      refuseDisabled(known.user);
      await this.prisma.$transaction(async (tx) => {
        await this.identities.recordSignIn(tx, known.id, claims);
        await this.recordSignIn(tx, known.user.id, known.id, 'existing');
      });
      return known.user;
    }
    if (claims.email === undefined) {
      throw new AppError('invalid_grant', { detail: 'The Google account has no email address.', logReason: 'id token without email' });
    }
    const email = normalizeEmail(claims.email);
    const local = await this.users.findByEmailWithPassword(this.prisma, email);
    if (local !== null) {
      if (!claims.emailVerified || local.emailVerifiedAt === null) {
        throw new AppError('link_requires_signin', {
          detail: 'An account with this email exists. Sign in to it and link Google from there.',
          logReason: `email match without verification on both sides (google: ${claims.emailVerified}, local: ${local.emailVerifiedAt !== null})`,
        });
      }
      refuseDisabled(local);
      await this.prisma.$transaction(async (tx) => {
        const identity = await this.identities.create(tx, { userId: local.id, ...claims });
        await this.recordLinked(tx, local.id, identity, 'verified_email');
        await this.recordSignIn(tx, local.id, identity.id, 'linked_by_email');
      });
      // linking without the owner's doing: tell them, with how to undo it
      this.notices.send(local.email, 'google_linked_automatically');
      return local;
    }
    return this.prisma.$transaction(async (tx) => {
      const user = await this.users.createWithPassword(tx, {
        email,
        displayName: claims.name,
        passwordHash: null,
        emailVerified: claims.emailVerified,
      });
      const identity = await this.identities.create(tx, { userId: user.id, ...claims });
      await this.audit.record(tx, {
        action: 'user.signup',
        actor: { principalId: user.id, principalType: 'user' },
        target: { type: 'user', id: user.id },
        changes: { method: 'google', email_verified: claims.emailVerified },
      });
      await this.recordLinked(tx, user.id, identity, 'signup');
      await this.recordSignIn(tx, user.id, identity.id, 'created');
      return user;
    });
  }

  private async recordLinked(
    tx: Db,
    userId: string,
    identity: ExternalIdentity,
    how: 'signed_in' | 'verified_email' | 'signup',
  ): Promise<void> {
    await this.audit.record(tx, {
      action: 'identity.linked',
      actor: { principalId: userId, principalType: 'user' },
      target: { type: 'user', id: userId },
      changes: { identity_id: identity.id, issuer: identity.issuer, how },
    });
  }

  private async recordSignIn(tx: Db, userId: string, identityId: string, outcome: SignInOutcome): Promise<void> {
    await this.audit.record(tx, {
      action: 'auth.oidc_signin',
      actor: { principalId: userId, principalType: 'user' },
      target: { type: 'user', id: userId },
      changes: { provider: 'google', identity_id: identityId, outcome },
    });
  }
}

function refuseDisabled(user: User): void {
  if (user.status !== 'active') throw new AppError('account_disabled');
}
