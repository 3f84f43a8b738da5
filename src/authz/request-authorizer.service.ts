import { Injectable } from '@nestjs/common';
import { AppError } from '../common/app-error';
import { BearerAuthenticator } from '../session/bearer-authenticator';
import type { Principal } from '../session/principal';
import type { AuthDeclaration } from '../common/auth-declaration';
import type { Decision } from './decision-engine';

type RequiresDeclaration = Extract<AuthDeclaration, { kind: 'requires' }>;
import { AuthorizationCache } from './authorization-cache.service';
import { PolicyHook, type PolicyRequest } from './policy-hook.service';

export const TENANT_ID_PATTERN = /^[a-z0-9][a-z0-9-]{1,62}$/;
/**
 * A resource segment (view_type, aggregate_type) is a strict token: a glob grant such as
 * `queries.run:order*` must never match `orders/../payroll` (decoded from `%2F`), `orders?x` or
 * `orders#x`, and what is authorized is exactly what is forwarded.
 */
export const RESOURCE_TOKEN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function isResourceToken(value: string): boolean {
  return RESOURCE_TOKEN.test(value) && !value.includes('..');
}

export interface AuthorizationInput {
  declaration: AuthDeclaration;
  /** the Authorization header / metadata value */
  authorization?: string;
  /** the x-tenant-id header / metadata value */
  tenantHeader?: string;
  /** the resource the right applies to (e.g. the aggregate type), when the declaration names one */
  resource?: string;
  /**
   * method, path and client of the request, for declarations that ask the policy hook;
   * `asked-at-handshake` when re-deciding a connection the policy already admitted
   */
  policy?: PolicyRequest | 'asked-at-handshake';
}

export interface AuthorizationResult {
  principal?: Principal;
  tenantId?: string;
  decision?: { decision: 'allow' | 'deny'; reason: string };
}

/**
 * The transport-independent part of the global guard: authenticate, apply the x-tenant-id
 * rules of CONTRACT §5, decide. REST, gRPC and WebSocket handshakes all go through here;
 * failures are AppErrors that each transport maps at its edge.
 */
@Injectable()
export class RequestAuthorizer {
  constructor(
    private readonly authenticator: BearerAuthenticator,
    private readonly cache: AuthorizationCache,
    private readonly policy: PolicyHook,
  ) {}

  async authorize(input: AuthorizationInput): Promise<AuthorizationResult> {
    const { declaration } = input;
    if (declaration.kind === 'public') return {};
    // a delegated route passes the right its rule asks for, never its own declaration
    if (declaration.kind === 'delegated') throw new AppError('forbidden', { logReason: 'deny: no rule was applied' });
    const principal = await this.authenticator.authenticate(input.authorization);
    if (declaration.kind === 'authenticated') return { principal };
    const tenantId = this.tenantOf(declaration, input);
    const decision = await this.cache.decide(principal.id, tenantId, declaration.right, input.resource);
    return this.conclude(declaration, input, principal, tenantId, decision);
  }

  /**
   * The same answer as `authorize` without waiting, when everything it needs is in memory: a
   * token that verified before, the principal's grants, and no policy hook to ask. Undefined
   * when it is not (then `authorize`, which finds what is missing); refusals throw the same
   * errors in the same order. The proxied HTTP routes call this on every request.
   */
  authorizeNow(input: AuthorizationInput & { declaration: RequiresDeclaration }): AuthorizationResult | undefined {
    const { declaration } = input;
    if (declaration.policy === true && this.policy.enabled) return undefined;
    const principal = this.authenticator.authenticateNow(input.authorization);
    if (principal === undefined) return undefined;
    const tenantId = this.tenantOf(declaration, input);
    const decision = this.cache.decideNow(principal.id, tenantId, declaration.right, input.resource);
    if (decision === undefined) return undefined;
    const result = this.conclude(declaration, input, principal, tenantId, decision);
    return result instanceof Promise ? undefined : result;
  }

  /** The resource check and CONTRACT §5's x-tenant-id rules; the tenant the decision is about. */
  private tenantOf(declaration: RequiresDeclaration, input: AuthorizationInput): string | undefined {
    // validated before any decision: a glob is matched only against a token it may safely match
    if (declaration.resource !== undefined && !isResourceToken(input.resource ?? '')) {
      throw new AppError('validation_failed', {
        detail: 'The request has invalid fields.',
        errors: [{ path: declaration.resource, message: 'must be 1-128 letters, digits, ".", "_" or "-", without ".."' }],
      });
    }
    if (declaration.tenant === 'none') return undefined;
    const value = input.tenantHeader;
    if (value === undefined || value === '') {
      if (declaration.tenant === 'required') throw new AppError('tenant_required');
      return undefined;
    }
    if (!TENANT_ID_PATTERN.test(value)) throw new AppError('invalid_tenant_id');
    return value;
  }

  private conclude(
    declaration: RequiresDeclaration,
    input: AuthorizationInput,
    principal: Principal,
    tenantId: string | undefined,
    decision: Decision,
  ): AuthorizationResult | Promise<AuthorizationResult> {
    if (decision.decision === 'deny') {
      throw new AppError(decision.code ?? 'forbidden', { logReason: decision.reason });
    }
    const result: AuthorizationResult = { principal, tenantId, decision: { decision: 'allow', reason: decision.reason } };
    if (declaration.policy === true && this.policy.enabled && input.policy !== 'asked-at-handshake') {
      // a transport that forgot to describe the request must not skip the policy silently
      if (input.policy === undefined) throw new Error(`policy-checked route (${declaration.right}) authorized without request details`);
      return this.policy
        .check(principal, { tenantId, right: declaration.right, resource: input.resource }, input.policy)
        .then(() => result);
    }
    return result;
  }
}
