import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { AppError } from '../common/app-error';
import { BearerAuthenticator } from '../session/bearer-authenticator';
import { AUTH_DECLARATION, type AuthDeclaration } from './auth-declaration';
import { PlatformAdminsService } from './platform-admins.service';

const TENANT_ID = /^[a-z0-9][a-z0-9-]{1,62}$/;

/**
 * The one global guard: deny by default. A route without a declaration is refused,
 * whatever the transport; `@Public()` opts out, `@Authenticated()` / `@Requires()` opt in.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly authenticator: BearerAuthenticator,
    private readonly platformAdmins: PlatformAdminsService,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const declaration = this.reflector.getAllAndOverride<AuthDeclaration | undefined>(AUTH_DECLARATION, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (declaration === undefined) {
      throw new AppError('forbidden', { logReason: 'deny: route declares no authorization' });
    }
    if (declaration.kind === 'public') return true;
    if (context.getType() !== 'http') {
      throw new AppError('forbidden', { logReason: `deny: transport ${context.getType()} not supported yet` });
    }
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    const principal = await this.authenticator.authenticate(request.headers.authorization);
    request.principal = principal;
    request.ctx.principalId = principal.id;
    request.ctx.principalType = principal.type;
    if (declaration.kind === 'authenticated') return true;

    let tenantId: string | undefined;
    if (declaration.tenant !== 'none') {
      const header = request.headers['x-tenant-id'];
      const value = Array.isArray(header) ? header[0] : header;
      if (value === undefined || value === '') {
        if (declaration.tenant === 'required') throw new AppError('tenant_required');
      } else if (!TENANT_ID.test(value)) {
        throw new AppError('invalid_tenant_id');
      } else {
        tenantId = value;
        request.ctx.tenantId = value;
      }
    }
    // Until RBAC lands, only platform admins hold rights.
    if (this.platformAdmins.isPlatformAdmin(principal.id)) {
      request.ctx.authz = { decision: 'allow', reason: `allow: platform admin holds ${declaration.right}` };
      return true;
    }
    const reason = `deny: ${principal.id} holds no ${declaration.right}${tenantId !== undefined ? ` in tenant ${tenantId}` : ''}`;
    request.ctx.authz = { decision: 'deny', reason };
    throw new AppError('forbidden', { logReason: reason });
  }
}
