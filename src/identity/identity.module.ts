import { Global, Module } from '@nestjs/common';
import { BootstrapAdminService } from './bootstrap-admin.service';
import { EmailTokenRepository } from './email-token.repository';
import { MailerService } from './mailer.service';
import { PasswordHasher } from './password-hasher';
import { UserRepository } from './user.repository';

@Global()
@Module({
  providers: [UserRepository, EmailTokenRepository, MailerService, PasswordHasher, BootstrapAdminService],
  exports: [UserRepository, EmailTokenRepository, MailerService, PasswordHasher],
})
export class IdentityModule {}
