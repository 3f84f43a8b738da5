import type http from 'node:http';
import type { Duplex } from 'node:stream';
import type { INestApplicationContext } from '@nestjs/common';
import { WsAdapter } from '@nestjs/platform-ws';
import type { MessageMappingProperties } from '@nestjs/websockets';
import type { Observable } from 'rxjs';
import { WebSocketServer } from 'ws';
import { acceptKey } from './subscription-frames';
import { firstHeader } from '../common/header-value';

/**
 * Decides an upgrade before any 101 and writes its own refusals: HTTP answers in the problem
 * envelope (refuseHandshake), each with its log line. A malformed handshake is never admitted.
 */
export interface UpgradeGate {
  /** the headers of the 101 (x-request-id, x-correlation-id) to complete the upgrade; undefined: the gate has answered already */
  admit(request: http.IncomingMessage, socket: Duplex): Promise<Record<string, string> | undefined>;
  /** answers an upgrade to a path no gateway serves (404) */
  notFound(request: http.IncomingMessage, socket: Duplex): void;
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
 * upgrade listener: prefix match, then the gate, then the 101, written here without extensions
 * (no `permessage-deflate`), so the gateway can copy frames raw between the client and the
 * upstream (see SocketRelay). The gateway gets the client's stream, not a `ws` WebSocket: no
 * per-message handler machinery (JSON parsing of each frame) is bound, and no message is parsed.
 */
export class SubscriptionWsAdapter extends WsAdapter {
  private readonly servers: GatewayServer[] = [];
  private server: http.Server | undefined;

  constructor(
    app: INestApplicationContext,
    private readonly gate: UpgradeGate,
  ) {
    super(app);
  }

  override create(port: number, options: Record<string, unknown> & { path?: string } = {}): WebSocketServer {
    if (port !== 0 || options.path === undefined) throw new Error('SubscriptionWsAdapter serves path gateways on the HTTP port only');
    const { path, ...rest } = options;
    this.attach(this.httpServer as http.Server);
    // only the gateway's connection events: the 101 is written by `upgrade`, frames are relayed raw
    const server = new WebSocketServer({ noServer: true, ...rest }) as GatewayServer;
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

  /** The relay reports its own end (the gateway has no handleDisconnect): no listener per socket. */
  override bindClientDisconnect(): void {}

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
      if (this.server?.listenerCount('upgrade') === 1) this.gate.notFound(request, socket);
      return;
    }
    void this.gate.admit(request, socket).then((headers) => {
      if (headers === undefined) return;
      if (socket.destroyed) {
        this.gate.abandon(request);
        return;
      }
      // the gate admits only a well-formed handshake (malformedHandshake): the key is there
      const accept = acceptKey(firstHeader(request.headers['sec-websocket-key'])!);
      const offered = (firstHeader(request.headers['sec-websocket-protocol']) ?? '').split(',').map((item) => item.trim());
      // `bearer, <token>` offered by a browser: accept `bearer`, never echo the token
      const protocol = offered.includes('bearer') ? 'Sec-WebSocket-Protocol: bearer\r\n' : '';
      const own = Object.entries(headers)
        .map(([name, value]) => `${name}: ${value}\r\n`)
        .join('');
      socket.write(
        `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n${protocol}${own}\r\n`,
        'latin1',
      );
      server.emit('connection', socket, request, head);
    });
  };
}
