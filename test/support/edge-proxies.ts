import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './process';

const ROOT = path.resolve(__dirname, '..', '..');
/** The shipped edge configuration; its forward-auth blocks are what the tests run. */
export const SHIPPED_NGINX_CONF = path.join(ROOT, 'swarm', 'edge', 'nginx.conf');

/** The path of a binary on PATH (or in /usr/sbin), undefined when it is not installed. */
export function binary(name: string): string | undefined {
  const found = spawnSync('sh', ['-c', `command -v ${name} || ls /usr/sbin/${name} /usr/bin/${name} 2>/dev/null`], { encoding: 'utf8' });
  const first = found.stdout.trim().split('\n')[0];
  return first === undefined || first === '' ? undefined : first;
}

/** Text between `# BEGIN forward-auth <part>` and `# END forward-auth <part>` of the shipped nginx.conf. */
export function shippedBlock(part: 'http' | 'server'): string {
  const text = fs.readFileSync(SHIPPED_NGINX_CONF, 'utf8');
  const match = new RegExp(`# BEGIN forward-auth ${part}\\n([\\s\\S]*?)# END forward-auth ${part}`).exec(text);
  if (match === null) throw new Error(`swarm/edge/nginx.conf has no forward-auth ${part} block`);
  return match[1]!;
}

export interface EdgeProcess {
  port: number;
  dir: string;
  child: ChildProcess;
  logs(): string;
  stop(): Promise<void>;
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

async function startChild(name: string, command: string, args: string[], port: number, dir: string): Promise<EdgeProcess> {
  const child = spawn(command, args, {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir },
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let done = false;
  void exited.then(() => (done = true));
  const deadline = Date.now() + 15_000;
  while (!(await listening(port))) {
    if (done || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${name} did not start: ${output.slice(-2000)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    port,
    dir,
    child,
    logs: () => output,
    async stop() {
      if (!done) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export interface NginxOptions {
  gatehousePort: number;
  servicePort: number;
  /** keep the shipped 1 s decision cache (default) or drop proxy_cache */
  cache?: boolean;
  /** access log with the decision cache status, for hit ratios */
  accessLog?: boolean;
  workers?: number;
}

/**
 * Real nginx (non-daemon child) on a free port running the shipped forward-auth blocks, with
 * Gatehouse and the protected service at the given local ports; pid, logs, temp and cache
 * files live in a temp directory.
 */
export async function startNginx(options: NginxOptions): Promise<EdgeProcess> {
  const nginx = binary('nginx');
  if (nginx === undefined) throw new Error('nginx is not installed (apt-get install -y nginx)');
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-nginx-'));
  let http = shippedBlock('http').replace('/var/cache/nginx/forward_auth', path.join(dir, 'cache'));
  let server = shippedBlock('server');
  if (options.cache === false) {
    http = http.replace(/^\s*proxy_cache_path .*$/m, '');
    server = server.replace(/^\s*proxy_cache(?:_key|_valid)? .*$/gm, '');
  }
  const conf = `
${process.getuid?.() === 0 ? 'user root;' : ''}
worker_processes ${options.workers ?? 1};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  ${options.accessLog ? `log_format decisions '$status $gh_cache'; access_log ${dir}/access.log decisions;` : 'access_log off;'}
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${http}
  upstream gatehouse_http { server 127.0.0.1:${options.gatehousePort}; keepalive 64; }
  upstream orders_service { server 127.0.0.1:${options.servicePort}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
${server}
    # nginx alone, same upstream, no authentication (benchmark baseline)
    location /plain/ {
      proxy_pass http://orders_service;
      proxy_http_version 1.1;
      proxy_set_header Connection '';
    }
  }
}
`;
  fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
  return startChild('nginx', nginx, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;'], port, dir);
}

/** Real Caddy (`caddy run`, admin endpoint off) with the README's forward_auth configuration. */
export async function startCaddy(options: { gatehousePort: number; servicePort: number }): Promise<EdgeProcess> {
  const caddy = binary('caddy');
  if (caddy === undefined) throw new Error('caddy is not installed (apt-get install -y caddy)');
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-caddy-'));
  const caddyfile = `{
  admin off
  auto_https off
}
http://127.0.0.1:${port} {
${caddySiteBlock(`127.0.0.1:${options.gatehousePort}`, `127.0.0.1:${options.servicePort}`)}
}
`;
  fs.writeFileSync(path.join(dir, 'Caddyfile'), caddyfile);
  return startChild('caddy', caddy, ['run', '--config', path.join(dir, 'Caddyfile'), '--adapter', 'caddyfile'], port, dir);
}

/** The site block the README documents, with Gatehouse and the service addresses filled in. */
export function caddySiteBlock(gatehouse: string, service: string): string {
  const text = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const match = /```caddyfile\n[\s\S]*?# BEGIN site\n([\s\S]*?)\s*# END site/.exec(text);
  if (match === null) throw new Error('README.md has no Caddyfile site block');
  return match[1]!.replaceAll('gatehouse:3000', gatehouse).replaceAll('orders:8080', service);
}
