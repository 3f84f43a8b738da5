import type { ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { describe, expect, it } from 'vitest';
import { Authenticated, Public } from '../../src/common/auth-declaration';
import { AuthGuard } from '../../src/authz/auth.guard';
import type { PolicyHook } from '../../src/authz/policy-hook.service';
import { RequestAuthorizer } from '../../src/authz/request-authorizer.service';
import { AppError } from '../../src/common/app-error';
import type { AuthorizationCache } from '../../src/authz/authorization-cache.service';
import type { BearerAuthenticator } from '../../src/session/bearer-authenticator';
import { isAdminMutation, type StepUpService } from '../../src/authz/step-up.service';

class Routes {
  undeclared(): void {}
  @Public()
  open(): void {}
  @Authenticated()
  mine(): void {}
}

function contextFor(handler: keyof Routes, headers: Record<string, string> = {}): ExecutionContext {
  const request = { headers, ctx: {}, method: 'GET', url: '/v1/auth/me' };
  return {
    getHandler: () => Routes.prototype[handler],
    getClass: () => Routes,
    getType: () => 'http',
    switchToHttp: () => ({ getRequest: () => request }),
  } as unknown as ExecutionContext;
}

const authenticator = {
  authenticate: (header: string | undefined) =>
    header === 'Bearer good' ? Promise.resolve({ id: 'u1', type: 'user', amr: ['pwd'] }) : Promise.reject(new AppError('unauthenticated')),
} as unknown as BearerAuthenticator;
const guard = new AuthGuard(
  new Reflector(),
  new RequestAuthorizer(
    authenticator,
    { grantSourcesOf: () => Promise.resolve([]) } as unknown as AuthorizationCache,
    {
      enabled: false,
    } as unknown as PolicyHook,
  ),
  { requireForAdmin: () => Promise.reject(new Error('not an admin mutation')) } as unknown as StepUpService,
);

describe('AuthGuard (deny by default)', () => {
  it('refuses a route that declares nothing, even with a valid token', async () => {
    await expect(guard.canActivate(contextFor('undeclared', { authorization: 'Bearer good' }))).rejects.toMatchObject({
      code: 'forbidden',
    });
  });

  it('lets anyone through a @Public() route', async () => {
    await expect(guard.canActivate(contextFor('open'))).resolves.toBe(true);
  });

  it('requires a valid token on an @Authenticated() route', async () => {
    await expect(guard.canActivate(contextFor('mine'))).rejects.toMatchObject({ code: 'unauthenticated' });
    await expect(guard.canActivate(contextFor('mine', { authorization: 'Bearer good' }))).resolves.toBe(true);
  });
});

describe('step-up applies to admin mutations (CONTRACT §6)', () => {
  it.each([
    ['POST', '/admin/users/u1/disable', true],
    ['DELETE', '/admin/users/u1', true],
    ['PUT', '/admin/users/u1/password', true],
    ['PATCH', '/admin/roles/r1?x=1', true],
    ['GET', '/admin/users', false],
    ['HEAD', '/admin/users', false],
    ['POST', '/admin/runner/jobs', false],
    ['POST', '/v1/auth/signin', false],
    ['POST', '/administrator', false],
  ])('%s %s → %s', (method, path, expected) => {
    expect(isAdminMutation(method, path)).toBe(expected);
  });
});
