import { Injectable } from '@nestjs/common';
import { AppError } from '../common/app-error';
import { BearerAuthenticator } from '../session/bearer-authenticator';
import type { Principal } from '../session/principal';
import type { AuthDeclaration } from '../common/auth-declaration';
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
    // validated before any decision: a glob is matched only against a token it may safely match
    if (declaration.resource !== undefined && !isResourceToken(input.resource ?? '')) {
      throw new AppError('validation_failed', {
        detail: 'The request has invalid fields.',
        errors: [{ path: declaration.resource, message: 'must be 1-128 letters, digits, ".", "_" or "-", without ".."' }],
      });
    }

    let tenantId: string | undefined;
    if (declaration.tenant !== 'none') {
      const value = input.tenantHeader;
      if (value === undefined || value === '') {
        if (declaration.tenant === 'required') throw new AppError('tenant_required');
      } else if (!TENANT_ID_PATTERN.test(value)) {
        throw new AppError('invalid_tenant_id');
      } else {
        tenantId = value;
      }
    }
    const decision = await this.cache.decide(principal.id, tenantId, declaration.right, input.resource);
    if (decision.decision === 'deny') {
      throw new AppError(decision.code ?? 'forbidden', { logReason: decision.reason });
    }
    if (declaration.policy === true && this.policy.enabled && input.policy !== 'asked-at-handshake') {
      // a transport that forgot to describe the request must not skip the policy silently
      if (input.policy === undefined) throw new Error(`policy-checked route (${declaration.right}) authorized without request details`);
      await this.policy.check(principal, { tenantId, right: declaration.right, resource: input.resource }, input.policy);
    }
    return { principal, tenantId, decision: { decision: 'allow', reason: decision.reason } };
  }
}
