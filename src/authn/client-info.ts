import type { FastifyRequest } from 'fastify';
import type { ClientInfo } from '../session/session.service';

/** Client address (per TRUST_PROXY) and user agent, as recorded on sessions. */
export function clientInfo(request: FastifyRequest): ClientInfo {
  return { ip: request.ctx.clientIp, userAgent: request.ctx.userAgent };
}
