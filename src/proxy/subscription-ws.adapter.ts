import type http from 'node:http';
import type { Duplex } from 'node:stream';
import type { INestApplicationContext } from '@nestjs/common';
import { WsAdapter } from '@nestjs/platform-ws';
import type { MessageMappingProperties } from '@nestjs/websockets';
import type { Observable } from 'rxjs';
import { WebSocketServer } from 'ws';
import { writeRawResponse } from './subscription-handshake';

/** Decides an upgrade before any 101; it writes its own refusals (HTTP answers). */
export interface UpgradeGate {
  /** true: complete the upgrade; false: the gate has answered the request already */
  admit(request: http.IncomingMessage, socket: Duplex): Promise<boolean>;
  /** an admitted upgrade did not complete (client gone, malformed WebSocket handshake) */
  abandon(request: http.IncomingMessage): void;
}

interface GatewayServer extends WebSocketServer {
  path: string;
}

/**
 * The stock WsAdapter matches a gateway's path exactly and completes every upgrade at once,
 * leaving authorization to per-message guards. Subscriptions need `/v1/subscribe/{view_type}`
 * (a prefix) and every refusal as an HTTP answer before any 101, so this adapter owns the
 * upgrade listener: prefix match, then the gate, then `handleUpgrade`. Frames are relayed raw
 * by the gateway, so no per-message handler machinery (JSON parsing of each frame) is bound.
 */
export class SubscriptionWsAdapter extends WsAdapter {
  private readonly servers: GatewayServer[] = [];
  private server: http.Server | undefined;

  constructor(
    app: INestApplicationContext,
    private readonly gate: UpgradeGate,
    private readonly serverOptions: { maxPayload: number },
  ) {
    super(app);
  }

  override create(port: number, options: Record<string, unknown> & { path?: string } = {}): WebSocketServer {
    if (port !== 0 || options.path === undefined) throw new Error('SubscriptionWsAdapter serves path gateways on the HTTP port only');
    const { path, ...rest } = options;
    this.attach(this.httpServer as http.Server);
    // frames are relayed raw: the endpoints validate UTF-8, the relay does not do it twice
    const server = new WebSocketServer({
      noServer: true,
      ...rest,
      maxPayload: this.serverOptions.maxPayload,
      skipUTF8Validation: true,
    }) as GatewayServer;
    server.path = path.replace(/\/+$/, '');
    this.servers.push(server);
    return server;
  }

  /** No @SubscribeMessage handlers: frames never go through Nest's message pipeline. */
  override bindMessageHandlers(
    client: unknown,
    handlers: MessageMappingProperties[],
    transform: (data: unknown) => Observable<unknown>,
  ): void {
    if (handlers.length > 0) super.bindMessageHandlers(client, handlers, transform);
  }

  override async dispose(): Promise<void> {
    this.server?.off('upgrade', this.onUpgrade);
    this.server = undefined;
    this.servers.length = 0;
    await super.dispose();
  }

  private attach(server: http.Server): void {
    if (this.server !== undefined) return;
    this.server = server;
    server.on('upgrade', this.onUpgrade);
  }

  private readonly onUpgrade = (request: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => socket.destroy());
    const pathname = new URL(request.url ?? '/', 'http://gatehouse.invalid').pathname;
    const server = this.servers.find((candidate) => pathname.startsWith(`${candidate.path}/`));
    if (server === undefined) {
      // other upgrade listeners may own the path; alone, we answer 404
      if (this.server?.listenerCount('upgrade') === 1) writeRawResponse(socket, 404, { 'content-length': '0', connection: 'close' }, '');
      return;
    }
    void this.gate.admit(request, socket).then((admitted) => {
      if (!admitted) return;
      if (socket.destroyed) {
        this.gate.abandon(request);
        return;
      }
      let upgraded = false;
      socket.once('close', () => {
        if (!upgraded) this.gate.abandon(request);
      });
      server.handleUpgrade(request, socket, head, (client) => {
        upgraded = true;
        server.emit('connection', client, request);
      });
    });
  };
}
