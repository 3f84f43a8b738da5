import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { AppError } from '../common/app-error';
import { AUTH_DECLARATION, STEP_UP_DECLARATION, type AuthDeclaration } from '../common/auth-declaration';
import { RequestAuthorizer, type AuthorizationResult } from './request-authorizer.service';
import { isAdminMutation, StepUpService, type StepUpLevel } from './step-up.service';
import { firstHeader } from '../common/header-value';

/**
 * The one global guard: deny by default. A route without a declaration is refused,
 * whatever the transport; `@Public()` opts out, `@Authenticated()` / `@Requires()` opt in.
 * The decision itself is RequestAuthorizer's, shared with the WebSocket handshake.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly authorizer: RequestAuthorizer,
    private readonly stepUp: StepUpService,
  ) {}

  /** declarations are static metadata: read once per handler */
  private readonly declarations = new WeakMap<object, AuthDeclaration | undefined>();

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const handler = context.getHandler();
    let declaration = this.declarations.get(handler);
    if (declaration === undefined && !this.declarations.has(handler)) {
      declaration = this.reflector.getAllAndOverride<AuthDeclaration | undefined>(AUTH_DECLARATION, [handler, context.getClass()]);
      this.declarations.set(handler, declaration);
    }
    if (declaration === undefined) {
      throw new AppError('forbidden', { logReason: 'deny: route declares no authorization' });
    }
    // delegated: the handler runs RequestAuthorizer itself with what its rules ask for
    if (declaration.kind === 'public' || declaration.kind === 'delegated') return true;
    // gRPC calls (CommandGrpcServer) and WebSocket handshakes authorize outside Nest's pipeline
    if (context.getType() !== 'http') {
      throw new AppError('forbidden', { logReason: `deny: transport ${context.getType()} has no authorization path` });
    }
    return this.http(context, declaration);
  }

  private async http(context: ExecutionContext, declaration: AuthDeclaration): Promise<boolean> {
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    const resource =
      declaration.kind === 'requires' && declaration.resource !== undefined
        ? (request.params as Record<string, string> | undefined)?.[declaration.resource]
        : undefined;
    try {
      const result = await this.authorizer.authorize({
        declaration,
        authorization: firstHeader(request.headers.authorization),
        tenantHeader: firstHeader(request.headers['x-tenant-id']),
        resource,
        policy: {
          method: request.method,
          path: request.url,
          clientIp: request.ctx.clientIp,
          clientCertSubject: request.ctx.clientCertSubject,
        },
      });
      this.remember(request, result);
      if (result.principal !== undefined && isAdminMutation(request.method, request.url)) {
        const level =
          this.reflector.getAllAndOverride<StepUpLevel | undefined>(STEP_UP_DECLARATION, [context.getHandler(), context.getClass()]) ??
          'admin_mutation';
        await this.stepUp.requireForAdmin(result.principal, level, `${request.method} ${request.routeOptions.url ?? ''}`, result.tenantId);
      }
      return true;
    } catch (error) {
      if (error instanceof AppError && (error.code === 'forbidden' || error.code === 'tenant_forbidden')) {
        request.ctx.authz = { decision: 'deny', reason: error.options.logReason ?? 'deny' };
      }
      throw error;
    }
  }

  private remember(request: FastifyRequest, result: AuthorizationResult): void {
    if (result.principal !== undefined) {
      request.principal = result.principal;
      request.ctx.principalId = result.principal.id;
      request.ctx.principalType = result.principal.type;
    }
    if (result.tenantId !== undefined) request.ctx.tenantId = result.tenantId;
    if (result.decision !== undefined) request.ctx.authz = result.decision;
  }
}
