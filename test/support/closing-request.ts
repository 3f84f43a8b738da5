import http from 'node:http';

/** A reply read whole: status, parsed JSON body (undefined when not JSON) and headers. */
export interface Reply {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
  headers: http.IncomingHttpHeaders;
}

/** One request on its own connection (as a client behind an L7 edge); rejects on network errors. */
export function request(
  base: string,
  method: string,
  route: string,
  options: { json?: unknown; token?: string; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<Reply> {
  const body = options.json === undefined ? undefined : JSON.stringify(options.json);
  const url = new URL(route, base);
  return new Promise((resolve, reject) => {
    const outgoing = http.request(
      {
        host: url.hostname,
        port: url.port,
        method,
        path: url.pathname + url.search,
        agent: false,
        timeout: options.timeoutMs ?? 15_000,
        headers: {
          connection: 'close',
          ...(body !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}),
          ...(options.token !== undefined ? { authorization: `Bearer ${options.token}` } : {}),
          ...options.headers,
        },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: response.statusCode ?? 0, json, headers: response.headers });
        });
      },
    );
    outgoing.on('timeout', () => outgoing.destroy(new Error('request timeout')));
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}
