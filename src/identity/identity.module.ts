import { Global, Module } from '@nestjs/common';
import { AccountNotices } from './account-notices.service';
import { BootstrapAdminService } from './bootstrap-admin.service';
import { EmailTokenRepository } from './email-token.repository';
import { MailerService } from './mailer.service';
import { PasswordHasher } from './password-hasher';
import { UserRepository } from './user.repository';

@Global()
@Module({
  providers: [AccountNotices, UserRepository, EmailTokenRepository, MailerService, PasswordHasher, BootstrapAdminService],
  exports: [AccountNotices, UserRepository, EmailTokenRepository, MailerService, PasswordHasher],
})
export class IdentityModule {}
