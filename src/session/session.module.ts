import { Module } from '@nestjs/common';
import { DatabaseModule } from '../database/database.module';
import { MessagingModule } from '../messaging/messaging.module';
import { AuditModule } from '../audit/audit.module';
import { IdentityModule } from '../identity/identity.module';
import { AccessTokenInspector } from './access-token-inspector';
import { AccessTokenService } from './access-token.service';
import { BearerAuthenticator } from './bearer-authenticator';
import { JwksController } from './jwks.controller';
import { NatsOutagePoller } from './nats-outage-poller.service';
import { RevocationService } from './revocation.service';
import { SessionRepository } from './session.repository';
import { SessionService } from './session.service';
import { SigningKeyRepository } from './signing-key.repository';
import { SigningKeyService } from './signing-key.service';

@Module({
  imports: [DatabaseModule, MessagingModule, AuditModule, IdentityModule],
  controllers: [JwksController],
  providers: [
    SigningKeyRepository,
    SigningKeyService,
    AccessTokenService,
    RevocationService,
    NatsOutagePoller,
    SessionRepository,
    SessionService,
    BearerAuthenticator,
    AccessTokenInspector,
  ],
  exports: [
    AccessTokenInspector,
    SigningKeyService,
    SigningKeyRepository,
    AccessTokenService,
    RevocationService,
    NatsOutagePoller,
    SessionRepository,
    SessionService,
    BearerAuthenticator,
  ],
})
export class SessionModule {}
