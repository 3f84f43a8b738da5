import type http from 'node:http';
import { Inject, type BeforeApplicationShutdown } from '@nestjs/common';
import { WebSocketGateway, type OnGatewayConnection } from '@nestjs/websockets';
import type { Logger } from 'pino';
import type { Duplex } from 'node:stream';
import { requestContext } from '../common/request-context';
import { WsMessageLimits } from '../limits/ws-message-limits';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { LOGGER } from '../observability/logger';
import { SubscriptionAdmission, type AdmittedSubscription } from './subscription-admission.service';
import { SUBSCRIBE_PREFIX } from './subscription-handshake';
import { CLOSE_POLICY_VIOLATION, SubscriptionRegistry, type LiveSubscription } from './subscription-registry';
import { SocketRelay } from './subscription-relay';

const SHUTDOWN_CLOSE_WAIT_MS = 1000;

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

/**
 * `GET /v1/subscribe/{view_type}` over WebSocket. SubscriptionWsAdapter admits the handshake
 * (SubscriptionAdmission: Origin, authorization, handshake checks, upstream; refusals are HTTP
 * answers before any 101) and completes both handshakes without extensions; this gateway then
 * copies the two streams raw (SocketRelay: a frame-header scanner per direction, no message
 * parsing) with backpressure. Closes: the upstream failing or closing → 1011; a message above
 * WS_MAX_MESSAGE_BYTES either way → 1009; a client above WS_MESSAGE_RATE_LIMIT → 1008; policy →
 * 1008 (SubscriptionRegistry), including when the access token the socket was opened with
 * expires; shutdown → 1001. A client's close is relayed to the upstream and its answer back.
 */
@WebSocketGateway({ path: SUBSCRIBE_PREFIX })
export class SubscriptionGateway implements OnGatewayConnection<Duplex>, BeforeApplicationShutdown {
  constructor(
    private readonly admission: SubscriptionAdmission,
    private readonly registry: SubscriptionRegistry,
    private readonly messageLimits: WsMessageLimits,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async beforeApplicationShutdown(): Promise<void> {
    this.admission.stopAdmitting();
    await this.registry.closeAll(SHUTDOWN_CLOSE_WAIT_MS);
  }

  /** `client`: the client's stream after its 101 (SubscriptionWsAdapter), `head` what came with it. */
  handleConnection(client: Duplex, request: http.IncomingMessage, head: Buffer): void {
    const admitted = this.admission.claim(request);
    if (admitted === undefined) {
      client.destroy();
      return;
    }
    this.relay(client, head, admitted);
  }

  private relay(client: Duplex, head: Buffer, admitted: AdmittedSubscription): void {
    const { upstream, context } = admitted;
    const opened = Date.now();
    let expiry: NodeJS.Timeout | undefined;
    const messageRate = this.messageLimits.forConnection();
    const relay = new SocketRelay({
      client,
      clientHead: head,
      upstream: upstream.socket,
      upstreamHead: upstream.head,
      maxMessageBytes: this.config.WS_MAX_MESSAGE_BYTES,
      admitClientMessage:
        messageRate === undefined
          ? undefined
          : () => {
              if (messageRate.take()) return undefined;
              // CONTRACT §9: a client faster than WS_MESSAGE_RATE_LIMIT is closed, its message dropped
              this.messageLimits.refused();
              context.rateLimited = 'ws_message';
              return { code: CLOSE_POLICY_VIOLATION, reason: 'message rate limit' };
            },
      onEnd: (code, reason) => {
        clearTimeout(expiry);
        this.registry.remove(entry);
        admitted.release();
        requestContext.run(context, () =>
          this.logger.info({ close_code: code, reason, seconds: Math.round((Date.now() - opened) / 100) / 10 }, 'subscription closed'),
        );
      },
    });
    const entry: LiveSubscription = {
      principalId: admitted.principal.id,
      sessionId: admitted.principal.sessionId,
      authorization: admitted.authorization,
      tenantId: admitted.tenantId,
      shardId: admitted.shardId,
      viewType: admitted.target.viewType,
      close: (code, reason) => relay.close(code, reason),
      onGone: (listener) => relay.onGone(listener),
      destroy: () => relay.destroy(),
    };
    this.registry.add(entry);
    relay.start();
    const exp = tokenExpiry(admitted.authorization);
    if (exp !== undefined && !relay.ended) {
      const remaining = Math.min(exp * 1000 - Date.now(), 2 ** 31 - 1);
      expiry = setTimeout(() => entry.close(CLOSE_POLICY_VIOLATION, 'token expired'), Math.max(0, remaining));
      expiry.unref();
    }
  }
}
