import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootAppOnTestDatabase, type TestApp } from '../support/app';
import { enrolTotp, signupUser } from '../support/auth-flows';
import { http, type HttpResult, STRONG_PASSWORD, uniqueEmail } from '../support/http';
import { servicesAvailable } from '../support/services';

const available = servicesAvailable({ postgres: true, nats: true });
const ORIGIN = 'https://app.example.com';
const IP_LIMIT = 5;

/** Headers whose value differs per request (or per token) are reduced to their presence. */
const VARYING = new Set(['date', 'x-request-id', 'x-correlation-id', 'traceparent', 'content-length', 'keep-alive', 'retry-after']);

/** What a client sees, with the per-request values (ids, tokens, dates) replaced by their shape. */
function seen(result: HttpResult): { status: number; headers: Record<string, string>; body: unknown } {
  const headers: Record<string, string> = {};
  for (const [name, value] of [...result.headers.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    headers[name] = VARYING.has(name) ? '<present>' : value;
  }
  const body = result.json === undefined ? result.text : { ...result.json };
  if (typeof body === 'object' && body !== null) {
    const record = body as Record<string, unknown>;
    if (typeof record.request_id === 'string') {
      expect(record.request_id).toBe(result.headers.get('x-request-id'));
      record.request_id = '<request id>';
    }
    for (const key of ['access_token', 'refresh_token', 'mfa_token', 'expires_at', 'session_id']) {
      if (key in record) record[key] = `<${key}>`;
    }
    if (typeof record.user === 'object' && record.user !== null) record.user = Object.keys(record.user).sort();
  }
  return { status: result.status, headers, body };
}

/**
 * POST /v1/auth/signin is served by a handler Fastify calls directly (signin-fast-path.ts), not by
 * Nest's router. These are the answers a client saw from the Nest route (recorded against the build
 * before the fast route), for every kind of body the pipe and Fastify refuse, the refusals of the
 * service, both successes and the IP limiter: status, every header, the body.
 */
describe.skipIf(!available)('sign-in through the fast route answers as the Nest route did', () => {
  let app: TestApp;
  let close: () => Promise<void>;

  beforeAll(async () => {
    ({ app, close } = await bootAppOnTestDatabase({ CORS_ORIGINS: ORIGIN, TRUST_PROXY: '127.0.0.1', AUTH_IP_LIMIT: String(IP_LIMIT) }));
  });
  afterAll(() => close?.());

  let nextIp = 1;
  /** every request from its own address, so the IP limiter stays out of the way unless asked */
  const signin = (options: Parameters<typeof http>[3] = {}, ip = `203.0.113.${nextIp++}`) =>
    http(app.url, 'POST', '/v1/auth/signin', { ...options, headers: { origin: ORIGIN, 'x-forwarded-for': ip, ...options.headers } });

  it('refuses each invalid body with the pipe’s 400 validation_failed and its paths', async () => {
    const cases: [string, Parameters<typeof http>[3]][] = [
      ['no body', {}],
      ['empty object', { json: {} }],
      ['array', { json: [] }],
      ['string', { json: 'me@example.com' }],
      ['null', { json: null }],
      ['not an email', { json: { email: 'nobody', password: STRONG_PASSWORD } }],
      ['email not a string', { json: { email: 42, password: STRONG_PASSWORD } }],
      ['email too long', { json: { email: `${'a'.repeat(320)}@example.com`, password: STRONG_PASSWORD } }],
      ['empty password', { json: { email: 'me@example.com', password: '' } }],
      ['password too long', { json: { email: 'me@example.com', password: 'x'.repeat(5000) } }],
      ['password not a string', { json: { email: 'me@example.com', password: ['x'] } }],
    ];
    const answers: Record<string, unknown> = {};
    for (const [name, options] of cases) answers[name] = seen(await signin(options));
    expect(answers).toMatchSnapshot();
  });

  it('refuses what Fastify refuses before the handler: malformed JSON, another media type, an oversized body', async () => {
    const answers = {
      malformed: seen(await signin({ body: '{"email":', headers: { 'content-type': 'application/json' } })),
      mediaType: seen(await signin({ body: 'email=me@example.com', headers: { 'content-type': 'application/x-www-form-urlencoded' } })),
      tooLarge: seen(
        await signin({
          body: JSON.stringify({ email: 'me@example.com', password: 'x'.repeat(2_000_000) }),
          headers: { 'content-type': 'application/json' },
        }),
      ),
    };
    expect(answers).toMatchSnapshot();
  });

  it('answers a wrong password and an unknown account alike (401 invalid_credentials, Bearer challenge)', async () => {
    const user = await signupUser(app.url);
    const wrong = seen(await signin({ json: { email: user.email, password: 'not the password at all 9' } }));
    const unknown = seen(await signin({ json: { email: uniqueEmail('nobody'), password: STRONG_PASSWORD } }));
    expect(unknown).toEqual(wrong);
    expect(wrong).toMatchSnapshot();
  });

  it('signs in (200, tokens, no-store) and, with TOTP enrolled, answers MFA-pending', async () => {
    const user = await signupUser(app.url);
    const tokens = seen(await signin({ json: { email: user.email.toUpperCase(), password: user.password, extra: 'ignored' } }));
    const totpUser = await enrolTotp(app.url, await signupUser(app.url));
    const pending = seen(await signin({ json: { email: totpUser.email, password: totpUser.password } }));
    expect({ tokens, pending }).toMatchSnapshot();
  });

  it('answers the IP limiter’s 429 with Retry-After once the address has used AUTH_IP_LIMIT attempts', async () => {
    const ip = '198.51.100.7';
    const results: HttpResult[] = [];
    for (let i = 0; i <= IP_LIMIT; i++) {
      results.push(await signin({ json: { email: uniqueEmail('limited'), password: STRONG_PASSWORD } }, ip));
    }
    expect(results.map((result) => result.status)).toEqual([...Array<number>(IP_LIMIT).fill(401), 429]);
    expect(Number(results[IP_LIMIT]!.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(seen(results[IP_LIMIT]!)).toMatchSnapshot();
  });

  it('answers a CORS preflight for the route as before', async () => {
    const preflight = await http(app.url, 'OPTIONS', '/v1/auth/signin', {
      headers: { origin: ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    expect(seen(preflight)).toMatchSnapshot();
  });
});
