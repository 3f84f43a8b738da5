import type http from 'node:http';
import { Inject, type BeforeApplicationShutdown } from '@nestjs/common';
import { WebSocketGateway, type OnGatewayConnection } from '@nestjs/websockets';
import type { Logger } from 'pino';
import WebSocket, { type RawData } from 'ws';
import { requestContext } from '../common/request-context';
import { WsMessageLimits } from '../limits/ws-message-limits';
import { LOGGER } from '../observability/logger';
import { SubscriptionAdmission, type AdmittedSubscription } from './subscription-admission.service';
import { SUBSCRIBE_PREFIX } from './subscription-handshake';
import { CLOSE_INTERNAL_ERROR, CLOSE_POLICY_VIOLATION, SubscriptionRegistry, type LiveSubscription } from './subscription-registry';

/** A side whose peer has this much unsent is paused until the peer drains below LOW_WATER. */
const HIGH_WATER = 1024 * 1024;
const LOW_WATER = 256 * 1024;
const SHUTDOWN_CLOSE_WAIT_MS = 1000;
/** RFC 6455 §7.4.1: a message too big to process. */
const CLOSE_MESSAGE_TOO_BIG = 1009;

/** Seconds-since-epoch `exp` of an already verified JWT. */
function tokenExpiry(authorization: string): number | undefined {
  try {
    const payload = authorization.replace(/^Bearer\s+/i, '').split('.')[1] ?? '';
    const exp = (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp : undefined;
  } catch {
    return undefined;
  }
}

const BINARY = { binary: true };
const TEXT = { binary: false };
/** While a side is paused, how often its peer's backlog is looked at. */
const DRAIN_CHECK_MS = 10;

/**
 * Relays one message. No callback per message (it cost a closure and a call per frame): only
 * when the peer's backlog passes HIGH_WATER is the source paused, and then the backlog is
 * watched until it is below LOW_WATER again.
 */
function forward(source: WebSocket, target: WebSocket, data: RawData, isBinary: boolean): void {
  if (target.readyState !== WebSocket.OPEN) return;
  target.send(data, isBinary ? BINARY : TEXT);
  if (target.bufferedAmount > HIGH_WATER && !source.isPaused) {
    source.pause();
    const check = setInterval(() => {
      if (target.readyState !== WebSocket.OPEN || target.bufferedAmount <= LOW_WATER) {
        clearInterval(check);
        source.resume();
      }
    }, DRAIN_CHECK_MS);
  }
}

/** ws reports a frame above maxPayload this way (and closes that side with 1009). */
function tooBig(error: Error): boolean {
  return (error as Error & { code?: string }).code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH';
}

/**
 * `GET /v1/subscribe/{view_type}` over WebSocket. SubscriptionWsAdapter admits the handshake
 * (SubscriptionAdmission: Origin, authorization, handshake checks, upstream; refusals are HTTP
 * answers before any 101); this gateway then relays frame for frame, raw, to the projection
 * shard's socket with backpressure. Closes: the upstream failing or closing → 1011; a message
 * above WS_MAX_MESSAGE_BYTES either way → 1009; policy → 1008 (SubscriptionRegistry), including
 * when the access token the socket was opened with expires; shutdown → 1001.
 */
@WebSocketGateway({
  path: SUBSCRIBE_PREFIX,
  perMessageDeflate: false,
  // `bearer, <token>` offered by a browser: accept `bearer`, never echo the token
  handleProtocols: (protocols: Set<string>) => (protocols.has('bearer') ? 'bearer' : false),
})
export class SubscriptionGateway implements OnGatewayConnection<WebSocket>, BeforeApplicationShutdown {
  constructor(
    private readonly admission: SubscriptionAdmission,
    private readonly registry: SubscriptionRegistry,
    private readonly messageLimits: WsMessageLimits,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async beforeApplicationShutdown(): Promise<void> {
    this.admission.stopAdmitting();
    await this.registry.closeAll(SHUTDOWN_CLOSE_WAIT_MS);
  }

  handleConnection(client: WebSocket, request: http.IncomingMessage): void {
    const admitted = this.admission.claim(request);
    if (admitted === undefined) {
      client.close(CLOSE_INTERNAL_ERROR, 'not admitted');
      return;
    }
    this.relay(client, admitted);
  }

  private relay(client: WebSocket, admitted: AdmittedSubscription): void {
    const { upstream, context } = admitted;
    const opened = Date.now();
    let finished = false;
    let expiry: NodeJS.Timeout | undefined;
    const entry: LiveSubscription = {
      client,
      upstream,
      principalId: admitted.principal.id,
      sessionId: admitted.principal.sessionId,
      authorization: admitted.authorization,
      tenantId: admitted.tenantId,
      shardId: admitted.shardId,
      viewType: admitted.target.viewType,
      close: (code, reason) => {
        if (finished) return;
        finished = true;
        clearTimeout(expiry);
        this.registry.remove(entry);
        admitted.release();
        if (client.readyState === WebSocket.OPEN || client.readyState === WebSocket.CONNECTING) client.close(code, reason);
        if (upstream.readyState === WebSocket.OPEN) upstream.close(1000, 'client gone');
        else upstream.terminate();
        requestContext.run(context, () =>
          this.logger.info({ close_code: code, reason, seconds: Math.round((Date.now() - opened) / 100) / 10 }, 'subscription closed'),
        );
      },
    };
    this.registry.add(entry);
    upstream.removeAllListeners('error');
    const messageRate = this.messageLimits.forConnection();
    client.on('message', (data, isBinary) => {
      if (messageRate !== undefined && !messageRate.take()) {
        // CONTRACT §9: a client faster than WS_MESSAGE_RATE_LIMIT is closed, its message dropped
        if (!finished) {
          this.messageLimits.refused();
          context.rateLimited = 'ws_message';
          entry.close(CLOSE_POLICY_VIOLATION, 'message rate limit');
        }
        return;
      }
      forward(client, upstream, data, isBinary);
    });
    upstream.on('message', (data, isBinary) => forward(upstream, client, data, isBinary));
    upstream.on('close', () => entry.close(CLOSE_INTERNAL_ERROR, 'upstream closed'));
    upstream.on('error', (error) =>
      tooBig(error) ? entry.close(CLOSE_MESSAGE_TOO_BIG, 'upstream message too big') : entry.close(CLOSE_INTERNAL_ERROR, 'upstream failed'),
    );
    client.on('close', (code) => entry.close(code, 'client closed'));
    client.on('error', (error) => entry.close(CLOSE_MESSAGE_TOO_BIG, tooBig(error) ? 'message too big' : 'client error'));
    const exp = tokenExpiry(admitted.authorization);
    if (exp !== undefined) {
      const remaining = Math.min(exp * 1000 - Date.now(), 2 ** 31 - 1);
      expiry = setTimeout(() => entry.close(CLOSE_POLICY_VIOLATION, 'token expired'), Math.max(0, remaining));
      expiry.unref();
    }
  }
}
