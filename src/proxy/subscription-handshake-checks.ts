import type http from 'node:http';
import type { RequestContext } from '../common/request-context';
import type { Principal } from '../session/principal';

/** What a handshake check sees: an authenticated, authorized subscription not yet connected upstream. */
export interface SubscriptionHandshake {
  principal: Principal;
  tenantId: string;
  viewType: string;
  context: RequestContext;
  request: http.IncomingMessage;
}

/** Undoes what a check reserved (a connection slot, an in-flight count); called exactly once. */
export type HandshakeRelease = () => void;

/**
 * A check run at every `/v1/subscribe` handshake after authorization and before any upstream
 * contact, in the order of SUBSCRIPTION_HANDSHAKE_CHECKS. It refuses by throwing an AppError
 * (answered as HTTP, problem envelope, before any 101, e.g. 429 `rate_limited` with
 * Retry-After). What it reserves it may give back through the returned release, which runs when
 * the subscription ends, or at once when a later check or the upstream refuses the handshake.
 */
export interface SubscriptionHandshakeCheck {
  /** names the check in the log line of a refusal */
  readonly name: string;
  check(handshake: SubscriptionHandshake): HandshakeRelease | void | Promise<HandshakeRelease | void>;
}

/** The ordered list of handshake checks (provided in ProxyModule; append limits there). */
export const SUBSCRIPTION_HANDSHAKE_CHECKS = Symbol('SUBSCRIPTION_HANDSHAKE_CHECKS');
