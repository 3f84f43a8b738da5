import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { MailTemplates } from './mail-templates.service';
import { MailerService } from './mailer.service';

/** Every security-relevant change to an account the owner hears about (issue 11, "account changes happen silently"). */
export type AccountNotice =
  | 'google_linked'
  | 'google_linked_automatically'
  | 'google_unlinked'
  | 'password_reset'
  | 'password_changed'
  | 'password_set_by_admin'
  | 'totp_enrolled'
  | 'totp_disabled'
  | 'recovery_codes_regenerated'
  | 'recovery_code_used'
  | 'mfa_reset_by_admin'
  | 'mfa_locked';

const UNDO_SIGN_IN = 'If this was not you, reset your password at once and contact your administrator.';

function text(notice: AccountNotice, publicUrl: string): { subject: string; body: string } {
  switch (notice) {
    case 'google_linked':
      return {
        subject: 'Google sign-in was linked to your account',
        body: `A Google account was linked to your Gatehouse account; it can now be used to sign in.\n\nTo undo it, sign in and remove the Google identity from your account (${publicUrl}/v1/auth/identities). ${UNDO_SIGN_IN}`,
      };
    case 'google_linked_automatically':
      return {
        subject: 'Google sign-in was linked to your account',
        body: `Someone signed in with a Google account whose verified email address is yours, so it was linked to your Gatehouse account and can now be used to sign in.\n\nTo undo it, sign in and remove the Google identity from your account (${publicUrl}/v1/auth/identities). ${UNDO_SIGN_IN}`,
      };
    case 'google_unlinked':
      return {
        subject: 'Google sign-in was removed from your account',
        body: `A Google account was unlinked from your Gatehouse account and can no longer be used to sign in. ${UNDO_SIGN_IN}`,
      };
    case 'password_reset':
      return {
        subject: 'Your password was reset',
        body: `The password of your Gatehouse account was reset and every session signed out. ${UNDO_SIGN_IN}`,
      };
    case 'password_changed':
      return {
        subject: 'Your password was changed',
        body: `The password of your Gatehouse account was changed and your other sessions signed out. ${UNDO_SIGN_IN}`,
      };
    case 'password_set_by_admin':
      return {
        subject: 'An administrator set your password',
        body: `An administrator set a new password for your Gatehouse account. If you did not expect this, contact your administrator.`,
      };
    case 'totp_enrolled':
      return {
        subject: 'Two-step verification was turned on',
        body: `An authenticator app was added to your Gatehouse account and your other sessions signed out. ${UNDO_SIGN_IN}`,
      };
    case 'totp_disabled':
      return {
        subject: 'Two-step verification was turned off',
        body: `The authenticator app was removed from your Gatehouse account and your other sessions signed out. ${UNDO_SIGN_IN}`,
      };
    case 'recovery_codes_regenerated':
      return {
        subject: 'New recovery codes were created',
        body: `New recovery codes were created for your Gatehouse account; the previous ones no longer work. ${UNDO_SIGN_IN}`,
      };
    case 'recovery_code_used':
      return {
        subject: 'A recovery code was used',
        body: `One of your recovery codes was used to sign in to your Gatehouse account; it cannot be used again. ${UNDO_SIGN_IN}`,
      };
    case 'mfa_reset_by_admin':
      return {
        subject: 'An administrator reset your two-step verification',
        body: `An administrator removed the two-step verification of your Gatehouse account. If you did not ask for this, contact your administrator.`,
      };
    case 'mfa_locked':
      return {
        subject: 'Too many wrong verification codes',
        body: `Too many wrong two-step verification codes were entered for your Gatehouse account, so pending sign-ins were cancelled and codes from your authenticator app are refused until you reset your password, sign in with a recovery code, or an administrator unlocks the account. Someone may know your password: change it. ${UNDO_SIGN_IN}`,
      };
  }
}

/**
 * Tells the owner of an account about a change, through the mailer (callers send after their
 * transaction commits). The mails carry no secret, so they may say what happened plainly.
 * Each notice is a mail template named after it (`password_changed`, ...): the texts above are
 * the built-in ones, which MAIL_TEMPLATES_DIR can replace.
 */
@Injectable()
export class AccountNotices {
  constructor(
    private readonly mailer: MailerService,
    private readonly templates: MailTemplates,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  send(to: string, notice: AccountNotice): void {
    const { subject, body } = text(notice, this.config.PUBLIC_URL);
    // the built-in texts carry their own "if this was not you" advice
    const mail = this.templates.render(notice, { subject, paragraphs: body.split('\n\n'), notYou: '' }, { email: to });
    this.mailer.sendLater({ to, ...mail });
  }
}
