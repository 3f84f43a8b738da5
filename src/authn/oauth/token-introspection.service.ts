import { Inject, Injectable } from '@nestjs/common';
import { z } from 'zod';
import { AppError } from '../../common/app-error';
import { APP_CONFIG, type AppConfig } from '../../config/config';
import { AuthorizationCache } from '../../authz/authorization-cache.service';
import { decide } from '../../authz/decision-engine';
import { AccessTokenInspector } from '../../session/access-token-inspector';
import { ClientCredentialsService } from '../service-accounts/client-credentials.service';
import { BASIC_CHALLENGE, type PresentedClient } from './client-authentication';

/** The built-in right a service account needs, at platform scope, to introspect tokens (CONTRACT §12). */
export const INTROSPECT_RIGHT = 'iam.tokens.introspect';

/** RFC 7662 answer: `{active:false}` for anything not a live Gatehouse access token. */
export const introspectionSchema = z
  .union([
    z.object({ active: z.literal(false) }),
    z.object({
      active: z.literal(true),
      sub: z.string(),
      sid: z.string().optional(),
      exp: z.number().int(),
      iat: z.number().int(),
      iss: z.string(),
      principal_type: z.enum(['user', 'service_account']),
      token_type: z.literal('Bearer'),
    }),
  ])
  .meta({ id: 'Introspection' });
export type IntrospectionResponse = z.infer<typeof introspectionSchema>;

/** RFC 7662 for resource servers that prefer asking over verifying JWTs themselves. */
@Injectable()
export class TokenIntrospectionService {
  constructor(
    private readonly clients: ClientCredentialsService,
    private readonly authorization: AuthorizationCache,
    private readonly inspector: AccessTokenInspector,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async introspect(client: PresentedClient | undefined, token: string): Promise<IntrospectionResponse> {
    if (client === undefined) {
      throw new AppError('invalid_credentials', { logReason: 'introspection without client credentials', headers: BASIC_CHALLENGE });
    }
    // a refused caller always gets the Basic challenge (CONTRACT §12), however it authenticated
    const account = await this.clients.authenticate({ ...client, method: 'basic' });
    const decision = decide({
      principalId: account.id,
      right: INTROSPECT_RIGHT,
      assignments: await this.authorization.grantSourcesOf(account.id),
    });
    if (decision.decision === 'deny') throw new AppError('forbidden', { logReason: decision.reason });
    const claims = await this.inspector.liveClaims(token);
    if (claims === undefined) return { active: false };
    return {
      active: true,
      sub: claims.sub,
      ...(claims.sid !== undefined ? { sid: claims.sid } : {}),
      exp: claims.exp,
      iat: claims.iat,
      iss: this.config.PUBLIC_URL,
      principal_type: claims.principal_type,
      token_type: 'Bearer',
    };
  }
}
