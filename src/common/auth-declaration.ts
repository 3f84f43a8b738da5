import { SetMetadata } from '@nestjs/common';

/** What a route declares about who may call it; the global guard refuses routes without one. */
export type AuthDeclaration =
  | { kind: 'public' }
  | { kind: 'authenticated' }
  /** the handler authorizes each call itself against rules named by `by` (the forward-auth decision API) */
  | { kind: 'delegated'; by: string }
  | {
      kind: 'requires';
      right: string;
      /** the route is tenant-scoped: x-tenant-id is required and checked */
      tenant: 'required' | 'optional' | 'none';
      /** route parameter naming the resource the right applies to (e.g. aggregate_type) */
      resource?: string;
      /** proxied traffic: after an RBAC allow the policy hook (POLICY_URL) decides too (CONTRACT §13) */
      policy?: true;
    };

export const AUTH_DECLARATION = 'gatehouse:auth-declaration';

/** Anyone may call this route, signed in or not. */
export const Public = () => SetMetadata(AUTH_DECLARATION, { kind: 'public' } satisfies AuthDeclaration);

/** Any signed-in principal may call this route; it acts on the caller's own data. */
export const Authenticated = () => SetMetadata(AUTH_DECLARATION, { kind: 'authenticated' } satisfies AuthDeclaration);

/**
 * The guard lets the call through and the handler decides, per call, from rules it names
 * (the forward-auth decision API: the right depends on the original request, not the route).
 */
export const DelegatedTo = (by: string) => SetMetadata(AUTH_DECLARATION, { kind: 'delegated', by } satisfies AuthDeclaration);

/**
 * The caller needs `right`. `tenant: 'required'` makes x-tenant-id mandatory (CONTRACT §5);
 * `'optional'` checks the right in the named tenant when the header is present, at platform scope otherwise.
 */
export const Requires = (right: string, options: { tenant?: 'required' | 'optional' | 'none'; resource?: string; policy?: true } = {}) =>
  SetMetadata(AUTH_DECLARATION, {
    kind: 'requires',
    right,
    tenant: options.tenant ?? 'none',
    resource: options.resource,
    ...(options.policy === true ? { policy: true as const } : {}),
  } satisfies AuthDeclaration);

export const STEP_UP_DECLARATION = 'gatehouse:step-up';

/**
 * One of the most sensitive admin actions (CONTRACT §6 "Step-up"): besides the second factor
 * every admin mutation needs, the caller's last authentication must be within ADMIN_REAUTH_MAX_AGE.
 */
export const RecentAuthentication = () => SetMetadata(STEP_UP_DECLARATION, 'admin_sensitive');
