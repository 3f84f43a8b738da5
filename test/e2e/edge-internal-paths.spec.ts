import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { binary, SHIPPED_NGINX_CONF } from '../support/edge-proxies';
import { freePort, spawnGatehouse, type GatehouseProcess } from '../support/process';
import { NATS_URL, servicesAvailable } from '../support/services';
import { makeTestCertificates } from '../support/test-certificates';
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';

/*
 * The whole shipped swarm/edge/nginx.conf, run by real nginx in front of a real Gatehouse:
 * only what cannot exist outside Swarm is replaced (listen ports, the Docker DNS resolver and
 * `tasks.*` names, secret and cache paths). /metrics and /docs must not be reachable through
 * the edge, while the API is.
 */

const nginxBinary = binary('nginx');
const available = servicesAvailable({ postgres: true, nats: true }) && nginxBinary !== undefined;
if (nginxBinary === undefined) {
  if (process.env.REQUIRE_SERVICES === '1') throw new Error('nginx missing with REQUIRE_SERVICES=1 (apt-get install -y nginx)');
  console.warn('skipping edge-internal-paths: nginx not installed (apt-get install -y nginx)');
}

async function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe.skipIf(!available)('the public edge (shipped nginx.conf) keeps /metrics and /docs inside', () => {
  let db: TestDatabase;
  let gatehouse: GatehouseProcess;
  let nginx: ChildProcess;
  let dir: string;
  let httpsPort: number;
  let output = '';
  const dispatcher = new Agent({ connect: { rejectUnauthorized: false } });

  async function edge(pathname: string): Promise<{ status: number; body: string }> {
    const response = await request(`https://127.0.0.1:${httpsPort}${pathname}`, { dispatcher });
    return { status: response.statusCode, body: await response.body.text() };
  }

  beforeAll(async () => {
    db = await createTestDatabase();
    gatehouse = await spawnGatehouse({ DATABASE_URL: db.url, NATS_URL }, 'edge-internal');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-edge-'));
    const certs = makeTestCertificates(dir, 'IP:127.0.0.1');
    httpsPort = await freePort();
    const httpPort = await freePort();
    const gatehousePort = new URL(gatehouse.url).port;
    const conf = fs
      .readFileSync(SHIPPED_NGINX_CONF, 'utf8')
      .replace(/^\s*#.*$/gm, '')
      .replace(/^pid .*$/m, `pid ${dir}/nginx.pid;`)
      .replace(/^worker_processes .*$/m, `worker_processes 1;${process.getuid?.() === 0 ? '\nuser root;' : ''}`)
      .replace(/^\s*resolver .*$/m, '')
      .replace(/server tasks\.gatehouse:3000 [^;]*;/, `server 127.0.0.1:${gatehousePort};`)
      .replace(/server tasks\.gatehouse:50051 [^;]*;/, `server 127.0.0.1:${gatehousePort};`)
      .replace(/server tasks\.orders:8080 [^;]*;/, 'server 127.0.0.1:9;')
      .replace('/var/cache/nginx/forward_auth', path.join(dir, 'cache'))
      .replace('listen 80;', `listen 127.0.0.1:${httpPort};`)
      .replace('listen 443 ssl;', `listen 127.0.0.1:${httpsPort} ssl;`)
      // the installed nginx may predate `http2 on;` (1.25.1); HTTP/1.1 is enough for these paths
      .replace(/^\s*http2 on;$/m, '')
      .replace('/run/secrets/edge_tls_certificate', certs.cert)
      .replace('/run/secrets/edge_tls_key', certs.key)
      .replace(/access_log \/dev\/stdout;/, 'access_log off;')
      .replace(/error_log \/dev\/stderr (\w+);/, `error_log ${dir}/error.log $1;`)
      .replace(
        'http {',
        `http {\n  client_body_temp_path ${dir}/body;\n  proxy_temp_path ${dir}/proxy;\n  fastcgi_temp_path ${dir}/fastcgi;\n  uwsgi_temp_path ${dir}/uwsgi;\n  scgi_temp_path ${dir}/scgi;`,
      );
    expect(conf).not.toMatch(/tasks\.|\/run\/secrets|listen 443/);
    fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
    nginx = spawn(nginxBinary!, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    nginx.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    nginx.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    const deadline = Date.now() + 15_000;
    while (!(await listening(httpsPort))) {
      if (nginx.exitCode !== null || Date.now() > deadline) throw new Error(`nginx did not start: ${output}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });
  afterAll(async () => {
    if (nginx !== undefined && nginx.exitCode === null) {
      const exited = new Promise((resolve) => nginx.once('exit', resolve));
      nginx.kill('SIGTERM');
      await exited;
    }
    await dispatcher.close();
    await gatehouse?.stop();
    await db?.drop();
  });

  it('answers 404 for /metrics through the edge, while Gatehouse itself serves it', async () => {
    const direct = await fetch(`${gatehouse.url}/metrics`);
    expect(direct.status).toBe(200);
    expect(await direct.text()).toContain('gatehouse_http_requests_total');
    for (const pathname of ['/metrics', '/metrics?format=x', '//metrics', '/v1/../metrics', '/metrics/']) {
      const response = await edge(pathname);
      expect(response.status, pathname).toBe(404);
      expect(response.body, pathname).not.toContain('gatehouse_');
    }
  });

  it('answers 404 for /docs and its OpenAPI document through the edge', async () => {
    const direct = await fetch(`${gatehouse.url}/docs/openapi.json`);
    expect(direct.status).toBe(200);
    for (const pathname of ['/docs', '/docs/', '/docs/openapi.json']) {
      const response = await edge(pathname);
      expect(response.status, pathname).toBe(404);
      expect(response.body, pathname).not.toContain('openapi');
    }
  });

  it('still passes the API: /v1/auth/me gets Gatehouse problem 401, /health 200', async () => {
    const me = await edge('/v1/auth/me');
    expect(me.status).toBe(401);
    expect(JSON.parse(me.body)).toMatchObject({ status: 401 });
    const health = await edge('/health');
    expect(health.status).toBe(200);
  });
});
