import Fastify from 'fastify';
import { once } from 'node:events';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { trackHangUps } from '../../src/observability/http-pipeline';

/**
 * The request lines the pipeline writes come from onResponse when `answered()` says so, and from
 * the hang-up callback (499). Each request gets exactly one, whichever way it ends.
 */
describe('trackHangUps: one line per request on a keep-alive connection', () => {
  const app = Fastify();
  afterEach(() => app.close());

  it('a request answered before the tracking hook ran still gets its line; a hung-up one gets 499 once', async () => {
    const lines: string[] = [];
    // an earlier onRequest hook that answers on its own: the tracking hook never sees this request
    app.addHook('onRequest', async (request, reply) => {
      if (request.url === '/refused') return reply.code(403).send({ refused: true });
    });
    const answered = trackHangUps(app, (request) => lines.push(`${request.url} 499`));
    app.addHook('onResponse', (request, reply, done) => {
      if (answered(request)) lines.push(`${request.url} ${reply.statusCode}`);
      done();
    });
    app.get('/ok', () => ({ ok: true }));
    app.get('/refused', () => ({ ok: true }));
    app.get('/slow', async () => sleep(2000).then(() => ({ late: true })));
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as net.AddressInfo;

    const socket = net.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    const get = (path: string) => socket.write(`GET ${path} HTTP/1.1\r\nHost: test\r\n\r\n`);
    get('/ok'); // the connection is tracked from here on
    await expect.poll(() => received.match(/HTTP\/1\.1 /g)?.length ?? 0).toBe(1);
    get('/refused');
    await expect.poll(() => received.match(/HTTP\/1\.1 /g)?.length ?? 0).toBe(2);
    get('/slow');
    await sleep(100);
    socket.destroy();
    await expect.poll(() => lines.length).toBe(3);
    await sleep(2100); // the slow answer is worked out and thrown away: no second line
    expect(lines).toEqual(['/ok 200', '/refused 403', '/slow 499']);
  });
});
