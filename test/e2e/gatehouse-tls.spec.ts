import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Agent, fetch as undiciFetch, request } from 'undici';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, type TestApp } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { commandServiceDefinition } from '../support/fake-upstreams';
import { spawnGatehouse, waitFor, type GatehouseProcess } from '../support/process';
import { servicesAvailable } from '../support/services';
import { makeSignedCertificate, makeTestCa, type TestCa } from '../support/test-certificates';

const available = servicesAvailable({ postgres: true });
const MASTER_KEY = Buffer.alloc(32, 41).toString('base64');

interface Pem {
  cert: string;
  key: string;
}

/** An HTTPS client trusting `ca`, presenting `client` when given. */
function agentFor(ca: TestCa, client?: Pem): Agent {
  return new Agent({
    connect: {
      ca: fs.readFileSync(ca.cert),
      ...(client === undefined ? {} : { cert: fs.readFileSync(client.cert), key: fs.readFileSync(client.key) }),
    },
  });
}

/** Status of GET url, or the error code when the connection failed. */
async function statusOf(url: string, agent: Agent): Promise<number | string> {
  try {
    const response = await request(url, { dispatcher: agent, signal: AbortSignal.timeout(5000) });
    await response.body.dump();
    return response.statusCode;
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  }
}

/** CN of the client certificate in the request log lines of `logs` for `path`. */
function loggedSubjects(logs: string, route: string): Array<string | undefined> {
  return logs
    .split('\n')
    .filter((line) => line.includes('"msg":"request"') && line.includes(`"route":"${route}"`))
    .map((line) => (JSON.parse(line) as { client_cert_subject?: string }).client_cert_subject);
}

describe.skipIf(!available)('Gatehouse serving TLS with client certificates (CONTRACT §13)', () => {
  let db: TestDatabase;
  let dir: string;
  let ca: TestCa;
  let server: Pem;
  let client: Pem;
  let intruder: Pem;
  let required: GatehouseProcess;
  let optional: TestApp;
  let edgeTrusted: TestApp;
  let edgeUntrusted: TestApp;

  beforeAll(async () => {
    db = await createTestDatabase();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-tls-'));
    ca = makeTestCa(dir, 'clients-ca');
    const strangerCa = makeTestCa(dir, 'stranger-ca');
    server = makeSignedCertificate(dir, ca, 'gatehouse-server', 'IP:127.0.0.1,DNS:localhost');
    client = makeSignedCertificate(dir, ca, 'orders-service');
    intruder = makeSignedCertificate(dir, strangerCa, 'intruder');
    const tlsEnv = { TLS_CERT_FILE: server.cert, TLS_KEY_FILE: server.key, TLS_CLIENT_CA_FILE: ca.cert };
    const base = { DATABASE_URL: db.url, MASTER_KEY, LOG_LEVEL: 'info' };
    const healthAgent = agentFor(ca, client);
    [required, optional, edgeTrusted, edgeUntrusted] = await Promise.all([
      // the production start path (early listener, then the application takes it over)
      spawnGatehouse({ ...base, ...tlsEnv, TLS_CLIENT_CERT_REQUIRED: 'true' }, 'tls-required', {
        https: { fetch: (url, init) => undiciFetch(url, { ...init, dispatcher: healthAgent }) },
      }),
      bootApp({ ...base, ...tlsEnv }),
      bootApp({ ...base, TRUST_PROXY: '127.0.0.1' }),
      bootApp({ ...base }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([required?.stop(), optional?.close(), edgeTrusted?.close(), edgeUntrusted?.close()]);
    await db?.drop();
  });

  it('requires a client certificate the CA signed when TLS_CLIENT_CERT_REQUIRED, and logs its subject', async () => {
    expect(required.url).toMatch(/^https:/);
    expect(await statusOf(`${required.url}/health`, agentFor(ca, client))).toBe(200);
    expect(await statusOf(`${required.url}/health`, agentFor(ca))).not.toBe(200);
    expect(await statusOf(`${required.url}/health`, agentFor(ca, intruder))).not.toBe(200);
    await waitFor(() => loggedSubjects(required.logs(), '/health').includes('CN=orders-service'), 5000);
  });

  it('serves gRPC over TLS with the same client-certificate rule', async () => {
    const Service = commandServiceDefinition();
    const call = (credentials: grpc.ChannelCredentials) =>
      new Promise<grpc.status>((resolve) => {
        const grpcClient = new Service(`127.0.0.1:${required.grpcPort}`, credentials);
        grpcClient.SubmitCommand({}, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (error: grpc.ServiceError | null) => {
          grpcClient.close();
          resolve(error?.code ?? grpc.status.OK);
        });
      });
    const caPem = fs.readFileSync(ca.cert);
    // through TLS the call reaches Gatehouse, which refuses it for want of a token
    expect(await call(grpc.credentials.createSsl(caPem, fs.readFileSync(client.key), fs.readFileSync(client.cert)))).toBe(
      grpc.status.UNAUTHENTICATED,
    );
    expect(await call(grpc.credentials.createSsl(caPem))).toBe(grpc.status.UNAVAILABLE);
    expect(await call(grpc.credentials.createInsecure())).toBe(grpc.status.UNAVAILABLE);
  });

  it('with optional client certificates: none is fine, one that does not verify fails the connection', async () => {
    expect(optional.url).toMatch(/^https:/);
    expect(await statusOf(`${optional.url}/health`, agentFor(ca))).toBe(200);
    expect(await statusOf(`${optional.url}/ready`, agentFor(ca, client))).toBe(200);
    expect(await statusOf(`${optional.url}/health`, agentFor(ca, intruder))).not.toBe(200);
    await waitFor(() => loggedSubjects(optional.logs(), '/ready').includes('CN=orders-service'), 5000);
    expect(loggedSubjects(optional.logs(), '/health')).not.toContain('CN=intruder');
  });

  it('takes the edge’s verified certificate from Client-Cert only from TRUST_PROXY addresses', async () => {
    const der = new (await import('node:crypto')).X509Certificate(fs.readFileSync(client.cert)).raw.toString('base64');
    const send = (app: TestApp) => fetch(`${app.url}/ready`, { headers: { 'client-cert': `:${der}:` } });
    expect((await send(edgeTrusted)).status).toBe(200);
    expect((await send(edgeUntrusted)).status).toBe(200);
    await waitFor(() => loggedSubjects(edgeTrusted.logs(), '/ready').includes('CN=orders-service'), 5000);
    expect(loggedSubjects(edgeUntrusted.logs(), '/ready')).toEqual([undefined]);
  });
});
