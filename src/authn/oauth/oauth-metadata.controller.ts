import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Controller, Get, Header, Inject } from '@nestjs/common';
import { Public } from '../../common/auth-declaration';
import { APP_CONFIG, type AppConfig } from '../../config/config';
import { z } from 'zod';

const metadataSchema = z
  .object({
    issuer: z.string(),
    jwks_uri: z.string(),
    token_endpoint: z.string(),
    introspection_endpoint: z.string(),
    revocation_endpoint: z.string(),
    grant_types_supported: z.array(z.string()),
    response_types_supported: z.array(z.string()),
    token_endpoint_auth_methods_supported: z.array(z.string()),
    introspection_endpoint_auth_methods_supported: z.array(z.string()),
    revocation_endpoint_auth_methods_supported: z.array(z.string()),
  })
  .meta({ id: 'AuthorizationServerMetadata' });

/** RFC 8414 authorization server metadata: enough for standard libraries to find keys and endpoints. */
@ApiTags('oauth')
@Controller('.well-known')
export class OAuthMetadataController {
  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  @Public()
  @Get('oauth-authorization-server')
  @Header('cache-control', 'public, max-age=300')
  @ApiOperation({ summary: 'RFC 8414 authorization server metadata' })
  @ApiOkResponse({ standardSchema: metadataSchema })
  metadata(): z.infer<typeof metadataSchema> {
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
