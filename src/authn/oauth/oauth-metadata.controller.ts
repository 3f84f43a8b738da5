import { Controller, Get, Header, Inject } from '@nestjs/common';
import { Public } from '../../common/auth-declaration';
import { APP_CONFIG, type AppConfig } from '../../config/config';

/** RFC 8414 authorization server metadata: enough for standard libraries to find keys and endpoints. */
@Controller('.well-known')
export class OAuthMetadataController {
  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  @Public()
  @Get('oauth-authorization-server')
  @Header('cache-control', 'public, max-age=300')
  metadata(): Record<string, unknown> {
    const base = this.config.PUBLIC_URL;
    const clientAuth = ['client_secret_basic', 'client_secret_post'];
    return {
      issuer: base,
      jwks_uri: `${base}/.well-known/jwks.json`,
      token_endpoint: `${base}/v1/auth/token`,
      introspection_endpoint: `${base}/v1/auth/introspect`,
      revocation_endpoint: `${base}/v1/auth/revoke`,
      // users sign in and refresh through /v1/auth (signin, refresh), not through OAuth grants
      grant_types_supported: ['client_credentials'],
      response_types_supported: [],
      token_endpoint_auth_methods_supported: clientAuth,
      introspection_endpoint_auth_methods_supported: clientAuth,
      // refresh tokens belong to public clients (browsers, apps): whoever holds one may revoke it
      revocation_endpoint_auth_methods_supported: ['none'],
    };
  }
}
