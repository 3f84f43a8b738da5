import { Inject, type OnApplicationShutdown } from '@nestjs/common';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { LOGGER } from '../observability/logger';
import { startup } from '../observability/startup';
import { natsSecurity } from './nats-auth';

/**
 * The one NATS connection of this replica (absent in single-node mode). It reconnects
 * forever; `/ready` reports it, and listeners learn of reconnects to resynchronize caches.
 */
export class NatsConnectionService implements OnApplicationShutdown {
  private connection: NatsConnection | undefined;
  private connected = false;
  private readonly reconnectListeners: Array<() => void> = [];
  private readonly disconnectListeners: Array<() => void> = [];

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  get enabled(): boolean {
    return this.config.NATS_URL !== undefined;
  }

  get isConnected(): boolean {
    return this.connected;
  }

  /** The connection, or undefined in single-node mode. */
  get nc(): NatsConnection | undefined {
    return this.connection;
  }

  /** Called once at boot; resolves once connected, however long NATS takes to be reachable. */
  async start(): Promise<void> {
    if (this.config.NATS_URL === undefined) return;
    this.logger.info('connecting to NATS');
    // the early listener says on /health that start-up waits for NATS; a log line if it takes long
    startup.waitFor('nats');
    const slow = setTimeout(
      () => this.logger.warn('waiting for NATS at start; /health answers, /ready stays unready until it is reachable'),
      2000,
    );
    try {
      this.connection = await this.connect();
    } finally {
      clearTimeout(slow);
      startup.done('nats');
    }
    this.connected = true;
    void this.watchStatus(this.connection);
  }

  private connect(): Promise<NatsConnection> {
    return connect({
      servers: this.config.NATS_URL!.split(',').map((server) => server.trim()),
      name: 'gatehouse',
      maxReconnectAttempts: -1,
      // a returning server is found within ~⅓ s (plus jitter): audit publishing and events resume at once
      reconnectTimeWait: 250,
      waitOnFirstConnect: true,
      pingInterval: 5000,
      ...natsSecurity(this.config),
    });
  }

  onReconnect(listener: () => void): void {
    this.reconnectListeners.push(listener);
  }

  /** Called when the connection is lost (it keeps reconnecting); e.g. to stop waiting on replies. */
  onDisconnect(listener: () => void): void {
    this.disconnectListeners.push(listener);
  }

  private async watchStatus(connection: NatsConnection): Promise<void> {
    for await (const status of connection.status()) {
      if (status.type === 'disconnect') {
        if (!this.connected) continue;
        this.connected = false;
        this.logger.warn('nats disconnected');
        this.notify(this.disconnectListeners);
      } else if (status.type === 'reconnect') {
        this.connected = true;
        this.logger.info('nats reconnected');
        this.notify(this.reconnectListeners);
      }
    }
  }

  private notify(listeners: Array<() => void>): void {
    for (const listener of listeners) {
      try {
        listener();
      } catch (error) {
        this.logger.error({ err: error }, 'nats connection listener failed');
      }
    }
  }

  async onApplicationShutdown(): Promise<void> {
    const connection = this.connection;
    this.connection = undefined;
    this.connected = false;
    if (connection !== undefined && !connection.isClosed()) await connection.drain().catch(() => connection.close());
  }
}
