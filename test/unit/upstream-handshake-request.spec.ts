import http from 'node:http';
import https from 'node:https';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { handshakeRequestOptions } from '../../src/proxy/upstream-socket.connector';

/** The request head Node writes for these options, read from a stream that stands in for the connection. */
async function headWritten(options: https.RequestOptions, secure: boolean): Promise<string> {
  let written = '';
  const connection = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      written += chunk.toString('latin1');
      callback();
    },
  });
  const request = (secure ? https : http).request({ ...options, agent: undefined, createConnection: () => connection });
  request.on('error', () => undefined);
  request.end();
  for (let i = 0; i < 50 && !written.includes('\r\n\r\n'); i += 1) await new Promise((resolve) => setTimeout(resolve, 2));
  request.destroy();
  return written.slice(0, written.indexOf('\r\n\r\n'));
}

const context = tls.createSecureContext();

describe('the upstream WebSocket handshake request', () => {
  it.each([
    ['wss://up.example:443/v1/subscribe/orders', 443, 'up.example'],
    ['wss://up.example/v1/subscribe/orders', 443, 'up.example'],
    ['wss://up.example:8443/v1/subscribe/orders', 8443, 'up.example:8443'],
    ['wss://10.0.0.7:9443/v1/subscribe/orders', 9443, '10.0.0.7:9443'],
  ])('over TLS, %s connects to port %i and says Host: %s', async (url, port, host) => {
    const options = handshakeRequestOptions(url, {}, 'a2V5', context);
    expect(options.port).toBe(port);
    expect(options.agent).toBeUndefined();
    expect(typeof options.createConnection).toBe('function');
    const head = await headWritten(options, true);
    expect(head.split('\r\n')).toContain(`Host: ${host}`);
    expect(head.startsWith('GET /v1/subscribe/orders HTTP/1.1')).toBe(true);
  });

  it.each([
    ['ws://up.example:80/v1/subscribe/orders', 80, 'up.example'],
    ['ws://up.example:8080/v1/subscribe/orders?x=1', 8080, 'up.example:8080'],
    ['ws://[::1]:8080/v1/subscribe/orders', 8080, '[::1]:8080'],
  ])('in plaintext, %s connects to port %i and says Host: %s', async (url, port, host) => {
    const options = handshakeRequestOptions(url, {}, 'a2V5', undefined);
    expect(options.port).toBe(port);
    expect(options.agent).toBe(false);
    const head = await headWritten(options, false);
    expect(head.split('\r\n')).toContain(`Host: ${host}`);
  });

  it('asks for an upgrade with the key and offers no extension or subprotocol', async () => {
    const head = await headWritten(
      handshakeRequestOptions('ws://up.example:8080/v1/subscribe/orders', { 'x-tenant-id': 'acme' }, 'a2V5', undefined),
      false,
    );
    const lines = head.toLowerCase().split('\r\n');
    expect(lines).toEqual(
      expect.arrayContaining([
        'connection: upgrade',
        'upgrade: websocket',
        'sec-websocket-version: 13',
        'sec-websocket-key: a2v5',
        'x-tenant-id: acme',
      ]),
    );
    expect(lines.some((line) => line.startsWith('sec-websocket-extensions') || line.startsWith('sec-websocket-protocol'))).toBe(false);
  });
});
