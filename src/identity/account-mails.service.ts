import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { MailerService } from './mailer.service';

export const VERIFY_EMAIL_TTL_S = 24 * 3600;
export const RESET_PASSWORD_TTL_S = 30 * 60;

/**
 * The mails that carry a link or answer a self-service request (verification, reset, email
 * change, deletion). Callers send after their transaction commits.
 */
@Injectable()
export class AccountMails {
  constructor(
    private readonly mailer: MailerService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  verifyEmail(to: string, token: string): void {
    this.mailer.sendLater({
      to,
      subject: 'Verify your email address',
      text: `Welcome to Gatehouse.\n\nVerify your email address with this link (valid 24 hours):\n${this.verifyLink(token)}\n`,
    });
  }

  resetPassword(to: string, token: string): void {
    this.mailer.sendLater({
      to,
      subject: 'Reset your password',
      text: `Someone asked to reset the password of your Gatehouse account.\n\nSet a new password with this link (valid 30 minutes, once):\n${this.resetLink(token)}\n\nIf it was not you, ignore this message.\n`,
    });
  }

  confirmEmailChange(to: string, token: string): void {
    this.mailer.sendLater({
      to,
      subject: 'Confirm your new email address',
      text: `Someone asked to move a Gatehouse account to this address.\n\nConfirm it with this link (valid 24 hours, once):\n${this.verifyLink(token)}\n\nIf it was not you, ignore this message: nothing changes.\n`,
    });
  }

  emailAddressTaken(to: string): void {
    this.mailer.sendLater({
      to,
      subject: 'Your email address is already in use',
      text: `Someone asked to move a Gatehouse account to this address, but this address already belongs to a Gatehouse account, so nothing changed.\n\nIf it was not you, ignore this message.\n`,
    });
  }

  emailChanged(to: string): void {
    this.mailer.sendLater({
      to,
      subject: 'The email address of your account was changed',
      text: `The email address of your Gatehouse account was changed; this address no longer signs in.\n\nIf this was not you, contact your administrator at once.\n`,
    });
  }

  accountDeleted(to: string): void {
    this.mailer.sendLater({
      to,
      subject: 'Your account was deleted',
      text: `Your Gatehouse account and its personal data were deleted, and every session was signed out.\n\nIf this was not you, contact your administrator at once.\n`,
    });
  }

  private verifyLink(token: string): string {
    return `${this.config.PUBLIC_URL}/account/verify-email?token=${token}`;
  }

  private resetLink(token: string): string {
    return `${this.config.PUBLIC_URL}/account/reset-password?token=${token}`;
  }
}
