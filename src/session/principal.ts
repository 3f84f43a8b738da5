import type { PrincipalType } from './access-token.service';

/** The authenticated caller, as the guard attaches it to the request. */
export interface Principal {
  id: string;
  type: PrincipalType;
  sessionId?: string;
  amr: string[];
}

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}
