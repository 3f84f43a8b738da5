import { Module } from '@nestjs/common';
import { DatabaseModule } from '../database/database.module';
import { MessagingModule } from '../messaging/messaging.module';
import { AuditModule } from '../audit/audit.module';
import { IdentityModule } from '../identity/identity.module';
import { SessionModule } from '../session/session.module';
import { AuthzModule } from '../authz/authz.module';
import { AbuseLimiter } from './abuse-limiter.service';
import { AuthIpLimitGuard } from './auth-ip-limit.guard';
import { ExactCounterStorage } from './exact-counter.storage';
import { AccountController } from './account.controller';
import { AccountRepository } from './account.repository';
import { AccountService } from './account.service';
import { MfaChallengeRepository } from './mfa/mfa-challenge.repository';
import { MfaChallengeService } from './mfa/mfa-challenge.service';
import { MfaSigninService } from './mfa/mfa-signin.service';
import { MfaController } from './mfa/mfa.controller';
import { RecoveryCodeRepository } from './mfa/recovery-code.repository';
import { SecondFactorService } from './mfa/second-factor.service';
import { TotpCredentialRepository } from './mfa/totp-credential.repository';
import { TotpService } from './mfa/totp.service';
import { ExternalIdentityRepository } from './oidc/external-identity.repository';
import { GoogleConfiguredGuard } from './oidc/google-configured.guard';
import { GoogleOidcClient } from './oidc/google-oidc.client';
import { GoogleOidcController } from './oidc/google-oidc.controller';
import { GoogleOidcService } from './oidc/google-oidc.service';
import { IdentityAdminController } from './oidc/identity-admin.controller';
import { IdentityLinkingService } from './oidc/identity-linking.service';
import { OidcAuthorizationService } from './oidc/oidc-authorization.service';
import { OidcLoginCodeRepository } from './oidc/oidc-login-code.repository';
import { OidcStateRepository } from './oidc/oidc-state.repository';
import { RateLimitCounterRepository } from './rate-limit-counter.repository';
import { ReauthController } from './reauth.controller';
import { ReauthService } from './reauth.service';
import { PasswordAuthController } from './password/password-auth.controller';
import { PasswordAuthService } from './password/password-auth.service';
import { OAuthEndpointsController } from './oauth/oauth-endpoints.controller';
import { OAuthMetadataController } from './oauth/oauth-metadata.controller';
import { TokenIntrospectionService } from './oauth/token-introspection.service';
import { TokenRevocationService } from './oauth/token-revocation.service';
import { AccountPagesController } from './pages/account-pages.controller';
import { AccountDeletionService } from './self-service/account-deletion.service';
import { CredentialChangeService } from './self-service/credential-change.service';
import { PasswordProof } from './self-service/password-proof';
import { SelfServiceController } from './self-service/self-service.controller';
import { ClientCredentialsController } from './service-accounts/client-credentials.controller';
import { ClientCredentialsService } from './service-accounts/client-credentials.service';

@Module({
  imports: [DatabaseModule, MessagingModule, AuditModule, IdentityModule, SessionModule, AuthzModule],
  controllers: [
    PasswordAuthController,
    AccountController,
    MfaController,
    GoogleOidcController,
    IdentityAdminController,
    ClientCredentialsController,
    OAuthEndpointsController,
    OAuthMetadataController,
    SelfServiceController,
    AccountPagesController,
    ReauthController,
  ],
  providers: [
    RateLimitCounterRepository,
    AccountRepository,
    AbuseLimiter,
    ExactCounterStorage,
    AuthIpLimitGuard,
    PasswordAuthService,
    AccountService,
    ClientCredentialsService,
    // self-service/
    PasswordProof,
    CredentialChangeService,
    AccountDeletionService,
    // oauth/
    TokenIntrospectionService,
    TokenRevocationService,
    ReauthService,
    // mfa/
    TotpCredentialRepository,
    RecoveryCodeRepository,
    MfaChallengeRepository,
    SecondFactorService,
    MfaChallengeService,
    TotpService,
    MfaSigninService,
    // oidc/
    ExternalIdentityRepository,
    OidcStateRepository,
    OidcLoginCodeRepository,
    GoogleOidcClient,
    GoogleConfiguredGuard,
    OidcAuthorizationService,
    IdentityLinkingService,
    GoogleOidcService,
  ],
  exports: [
    AbuseLimiter,
    ExactCounterStorage,
    TotpCredentialRepository,
    OidcStateRepository,
    RecoveryCodeRepository,
    ExternalIdentityRepository,
  ],
})
export class AuthnModule {}
