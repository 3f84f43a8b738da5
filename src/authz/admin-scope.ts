import type { FastifyRequest } from 'fastify';
import type { Principal } from '../session/principal';

/**
 * Who is acting and where: `tenantId` is set when the caller named a tenant with x-tenant-id
 * (a tenant admin always does; the guard has checked the right in that tenant). Without it
 * the call is at platform scope, which only platform-scope assignments reach.
 */
export interface AdminScope {
  actor: Principal;
  tenantId?: string;
}

export function adminScope(request: FastifyRequest): AdminScope {
  return { actor: request.principal!, tenantId: request.ctx.tenantId };
}
