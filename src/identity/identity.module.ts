import { Module } from '@nestjs/common';
import { AccountMails } from './account-mails.service';
import { AccountNotices } from './account-notices.service';
import { EmailTokenRepository } from './email-token.repository';
import { MailTemplates } from './mail-templates.service';
import { MailerService } from './mailer.service';
import { PasswordHasher } from './password-hasher';
import { UserRepository } from './user.repository';
import { DeletedPrincipalRepository } from './deleted-principal.repository';
import { ServiceAccountRepository } from './service-account.repository';

@Module({
  providers: [
    AccountMails,
    AccountNotices,
    UserRepository,
    EmailTokenRepository,
    ServiceAccountRepository,
    DeletedPrincipalRepository,
    MailerService,
    MailTemplates,
    PasswordHasher,
  ],
  exports: [
    AccountMails,
    AccountNotices,
    UserRepository,
    EmailTokenRepository,
    ServiceAccountRepository,
    DeletedPrincipalRepository,
    MailerService,
    MailTemplates,
    PasswordHasher,
  ],
})
export class IdentityModule {}
