import { Global, Module } from '@nestjs/common';
import { AccessTokenService } from './access-token.service';
import { BearerAuthenticator } from './bearer-authenticator';
import { JwksController } from './jwks.controller';
import { RevocationService } from './revocation.service';
import { SessionRepository } from './session.repository';
import { SessionService } from './session.service';
import { SigningKeyRepository } from './signing-key.repository';
import { SigningKeyService } from './signing-key.service';

@Global()
@Module({
  controllers: [JwksController],
  providers: [
    SigningKeyRepository,
    SigningKeyService,
    AccessTokenService,
    RevocationService,
    SessionRepository,
    SessionService,
    BearerAuthenticator,
  ],
  exports: [SigningKeyService, AccessTokenService, RevocationService, SessionRepository, SessionService, BearerAuthenticator],
})
export class SessionModule {}
