import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/config';
import type { BuiltInMail } from './mail-layout';
import { MailTemplates } from './mail-templates.service';
import { MailerService } from './mailer.service';

export const VERIFY_EMAIL_TTL_S = 24 * 3600;
export const RESET_PASSWORD_TTL_S = 30 * 60;

const NOT_YOU_IGNORE = 'If this was not you, ignore this message: nothing changes.';
const NOT_YOU_ADMIN = 'If this was not you, contact your administrator at once.';

/** Built-in texts, one template each (the names operators override in MAIL_TEMPLATES_DIR). */
export const LINK_MAILS = {
  verify_email: {
    subject: 'Verify your email address',
    paragraphs: ['Welcome to {{product_name}}.', 'Please confirm that {{email}} is your email address.'],
    action: 'Verify my email address',
    notYou: 'If you did not create an account, ignore this message.',
  },
  reset_password: {
    subject: 'Reset your password',
    paragraphs: ['Someone asked to reset the password of your {{product_name}} account ({{email}}).'],
    action: 'Choose a new password',
    notYou: 'If this was not you, ignore this message: your password stays as it is.',
  },
  confirm_email_change: {
    subject: 'Confirm your new email address',
    paragraphs: ['Someone asked to move a {{product_name}} account to this address ({{email}}).'],
    action: 'Confirm my new email address',
    notYou: NOT_YOU_IGNORE,
  },
  email_taken: {
    subject: 'Your email address is already in use',
    paragraphs: [
      'Someone asked to move a {{product_name}} account to this address ({{email}}), but it already belongs to a {{product_name}} account, so nothing changed.',
    ],
    notYou: 'If this was not you, ignore this message.',
  },
  email_changed: {
    subject: 'The email address of your account was changed',
    paragraphs: ['The email address of your {{product_name}} account was changed; {{email}} no longer signs in to it.'],
    notYou: NOT_YOU_ADMIN,
  },
  account_deleted: {
    subject: 'Your account was deleted',
    paragraphs: ['Your {{product_name}} account ({{email}}) and its personal data were deleted, and every session was signed out.'],
    notYou: NOT_YOU_ADMIN,
  },
} satisfies Record<string, BuiltInMail>;

type LinkMail = keyof typeof LINK_MAILS;

/**
 * The mails that carry a link or answer a self-service request (verification, reset, email
 * change, deletion). Links come from EMAIL_VERIFY_URL / PASSWORD_RESET_URL (`{token}`), by
 * default Gatehouse's own /account pages. Callers send after their transaction commits.
 */
@Injectable()
export class AccountMails {
  constructor(
    private readonly mailer: MailerService,
    private readonly templates: MailTemplates,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  verifyEmail(to: string, token: string): void {
    this.send('verify_email', to, { action_url: this.verifyLink(token), expires_in: '24 hours' });
  }

  resetPassword(to: string, token: string): void {
    this.send('reset_password', to, { action_url: this.resetLink(token), expires_in: '30 minutes' });
  }

  confirmEmailChange(to: string, token: string): void {
    this.send('confirm_email_change', to, { action_url: this.verifyLink(token), expires_in: '24 hours' });
  }

  emailAddressTaken(to: string): void {
    this.send('email_taken', to);
  }

  emailChanged(to: string): void {
    this.send('email_changed', to);
  }

  accountDeleted(to: string): void {
    this.send('account_deleted', to);
  }

  private send(name: LinkMail, to: string, values: { action_url?: string; expires_in?: string } = {}): void {
    this.mailer.sendLater({ to, ...this.templates.render(name, LINK_MAILS[name], { ...values, email: to }) });
  }

  private verifyLink(token: string): string {
    return link(this.config.EMAIL_VERIFY_URL ?? `${this.config.PUBLIC_URL}/account/verify-email?token={token}`, token);
  }

  private resetLink(token: string): string {
    return link(this.config.PASSWORD_RESET_URL ?? `${this.config.PUBLIC_URL}/account/reset-password?token={token}`, token);
  }
}

/** Tokens are base64url, so they need no escaping in a URL; encode anyway in case that changes. */
function link(template: string, token: string): string {
  return template.replaceAll('{token}', encodeURIComponent(token));
}
