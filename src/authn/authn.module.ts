import { Module } from '@nestjs/common';
import { AbuseLimiter } from './abuse-limiter.service';
import { AccountController } from './account.controller';
import { AccountService } from './account.service';
import { PasswordAuthController } from './password/password-auth.controller';
import { PasswordAuthService } from './password/password-auth.service';

@Module({
  controllers: [PasswordAuthController, AccountController],
  providers: [AbuseLimiter, PasswordAuthService, AccountService],
  exports: [AbuseLimiter],
})
export class AuthnModule {}
