import { randomUUID } from 'node:crypto';
import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import type { Logger } from 'pino';
import { LOGGER } from '../observability/logger';
import type { ClusterEventName, ClusterEvents } from './cluster-events';
import { NatsConnectionService } from './nats-connection.service';

type Handler<K extends ClusterEventName> = (payload: ClusterEvents[K]) => void | Promise<void>;

interface Envelope {
  origin: string;
  name: ClusterEventName;
  payload: unknown;
}

const SUBJECT_PREFIX = 'gatehouse.events.';

/**
 * Typed cross-replica events. A handler runs once on every replica: locally at once on the
 * publishing replica, and from NATS on the others (our own messages are skipped by origin).
 * Delivery over NATS is best effort; caches that depend on it also resynchronize on reconnect.
 */
@Injectable()
export class ClusterEventBus implements OnModuleInit {
  readonly instanceId = randomUUID();
  private readonly handlers = new Map<ClusterEventName, Array<Handler<ClusterEventName>>>();

  constructor(
    private readonly nats: NatsConnectionService,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onModuleInit(): void {
    const connection = this.nats.nc;
    if (connection === undefined) return;
    // lives as long as the connection (drained at shutdown)
    connection.subscribe(`${SUBJECT_PREFIX}>`, {
      callback: (error, message) => {
        if (error !== null) return;
        try {
          const envelope = message.json<Envelope>();
          if (envelope.origin === this.instanceId) return;
          void this.deliver(envelope.name, envelope.payload as ClusterEvents[ClusterEventName]);
        } catch (parseError) {
          this.logger.warn({ err: parseError }, 'ignored malformed cluster event');
        }
      },
    });
  }

  on<K extends ClusterEventName>(name: K, handler: Handler<K>): void {
    const list = this.handlers.get(name) ?? [];
    list.push(handler as Handler<ClusterEventName>);
    this.handlers.set(name, list);
  }

  /** Runs local handlers (awaited), then tells the other replicas. */
  async publish<K extends ClusterEventName>(name: K, payload: ClusterEvents[K]): Promise<void> {
    await this.deliver(name, payload);
    const connection = this.nats.nc;
    if (connection === undefined) return;
    const envelope: Envelope = { origin: this.instanceId, name, payload };
    try {
      connection.publish(SUBJECT_PREFIX + name, JSON.stringify(envelope));
    } catch (error) {
      this.logger.warn({ err: error, event: name }, 'cluster event not published; replicas resync on reconnect');
    }
  }

  /**
   * Runs this replica's handlers for a change another replica made, learnt some other way
   * than NATS (the database, while NATS is unreachable); nothing is sent.
   */
  deliverLocally<K extends ClusterEventName>(name: K, payload: ClusterEvents[K]): Promise<void> {
    return this.deliver(name, payload);
  }

  private async deliver<K extends ClusterEventName>(name: K, payload: ClusterEvents[K]): Promise<void> {
    for (const handler of this.handlers.get(name) ?? []) {
      try {
        await handler(payload);
      } catch (error) {
        this.logger.error({ err: error, event: name }, 'cluster event handler failed');
      }
    }
  }
}
