import { generateKeyPairSync } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider, { type Configuration } from 'oidc-provider';
import { startTcpProxy, type TcpProxy } from './tcp-proxy';

/** A Google account as the fake provider reports it in the ID token. */
export interface GoogleAccount {
  sub: string;
  email?: string;
  email_verified?: boolean;
  name?: string;
}

export interface FakeGoogle {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** present with `behindProxy`: cut() makes the provider unreachable for Gatehouse */
  proxy?: TcpProxy;
  addAccount(account: GoogleAccount): GoogleAccount;
  /** The provider's RS256 signing key (private JWK, kid `fake-google-1`), for tests that forge ID tokens. */
  signingKey: import('node:crypto').JsonWebKey & { kid: string };
  /**
   * When set, every ID token the token endpoint returns is passed through this function first
   * (a test's stand-in for a provider, or a network attacker, handing out a doctored token).
   */
  rewriteIdToken?: (idToken: string) => Promise<string> | string;
  /**
   * Plays the browser: opens `authorizationUrl`, signs in as `sub` on the provider's own
   * login form (over HTTP, with a cookie jar) and returns where the provider finally
   * redirects, i.e. the client's redirect_uri with `code`, `state` and `iss`.
   */
  login(authorizationUrl: string, sub: string): Promise<URL>;
  close(): Promise<void>;
}

/**
 * A real OpenID provider (oidc-provider 9) standing in for Google: discovery, JWKS, PKCE
 * required, RS256 ID tokens carrying `email`, `email_verified` and `name` like Google's.
 */
export async function startFakeGoogle(options: { redirectUri: string; behindProxy?: boolean }): Promise<FakeGoogle> {
  const accounts = new Map<string, GoogleAccount>();
  const clientId = 'gatehouse-test-client';
  const clientSecret = 'fake-google-client-secret-0123456789';
  let handler: http.RequestListener = (_request, response) => response.writeHead(503).end();
  const server = http.createServer((request, response) => handler(request, response));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const proxy = options.behindProxy === true ? await startTcpProxy('127.0.0.1', port) : undefined;
  const issuer = `http://127.0.0.1:${proxy?.port ?? port}`;

  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'fake-google-1', alg: 'RS256', use: 'sig' };
  const configuration: Configuration = {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [options.redirectUri],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_post',
      },
    ],
    jwks: { keys: [signingKey as never] },
    cookies: { keys: ['fake-google-cookie-key'] },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    // Google puts email and name in the ID token of the code flow too
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: true } },
    pkce: { required: () => true },
    ttl: { Interaction: 600, Session: 600, Grant: 600, AccessToken: 600, IdToken: 600, AuthorizationCode: 60 },
    findAccount(_ctx, sub) {
      const account = accounts.get(sub);
      if (account === undefined) return undefined;
      return {
        accountId: sub,
        claims: () => ({ sub, email: account.email, email_verified: account.email_verified, name: account.name }),
      };
    },
    // first-party client: no consent screen, as with an app's own Google sign-in
    async loadExistingGrant(ctx) {
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client!.clientId, accountId: ctx.oidc.session!.accountId });
      grant.addOIDCScope('openid email profile');
      await grant.save();
      return grant;
    },
  };
  const provider = new Provider(issuer, configuration);
  const callback = provider.callback();
  const fake: FakeGoogle = {
    issuer,
    clientId,
    clientSecret,
    proxy,
    signingKey: signingKey as import('node:crypto').JsonWebKey & { kid: string },
    addAccount(account) {
      accounts.set(account.sub, account);
      return account;
    },
    login: (authorizationUrl, sub) => browserLogin(authorizationUrl, sub, options.redirectUri),
    async close() {
      await proxy?.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  handler = (request, response) => {
    const rewrite = fake.rewriteIdToken;
    if (rewrite !== undefined && request.method === 'POST' && request.url?.startsWith('/token')) rewriteTokenResponse(response, rewrite);
    void callback(request, response);
  };
  return fake;
}

/** Buffers the provider's JSON token response and swaps its id_token before it leaves. */
function rewriteTokenResponse(response: http.ServerResponse, rewrite: (idToken: string) => Promise<string> | string): void {
  const end = response.end.bind(response) as (body?: unknown) => http.ServerResponse;
  response.end = ((body?: unknown) => {
    const text = Buffer.isBuffer(body) ? body.toString('utf8') : typeof body === 'string' ? body : '';
    let parsed: { id_token?: string } | undefined;
    try {
      parsed = JSON.parse(text) as { id_token?: string };
    } catch {
      parsed = undefined;
    }
    if (parsed?.id_token === undefined) return end(body);
    void Promise.resolve(rewrite(parsed.id_token)).then((idToken) => {
      const rewritten = JSON.stringify({ ...parsed, id_token: idToken });
      response.setHeader('content-length', Buffer.byteLength(rewritten));
      end(rewritten);
    });
    return response;
  }) as typeof response.end;
}

async function browserLogin(authorizationUrl: string, sub: string, redirectUri: string): Promise<URL> {
  const jar = new Map<string, string>();
  const send = async (url: URL, form?: Record<string, string>): Promise<Response> => {
    const headers: Record<string, string> = { cookie: [...jar].map(([name, value]) => `${name}=${value}`).join('; ') };
    if (form !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
    const response = await fetch(url, {
      method: form === undefined ? 'GET' : 'POST',
      headers,
      body: form === undefined ? undefined : new URLSearchParams(form).toString(),
      redirect: 'manual',
      signal: AbortSignal.timeout(10_000),
    });
    for (const cookie of response.headers.getSetCookie()) {
      const [pair] = cookie.split(';');
      const index = pair!.indexOf('=');
      jar.set(pair!.slice(0, index), pair!.slice(index + 1));
    }
    return response;
  };

  let url = new URL(authorizationUrl);
  let form: Record<string, string> | undefined;
  for (let hop = 0; hop < 12; hop += 1) {
    const response = await send(url, form);
    form = undefined;
    if (response.status >= 300 && response.status < 400) {
      const location = new URL(response.headers.get('location')!, url);
      await response.arrayBuffer();
      if (location.href.startsWith(redirectUri)) return location;
      url = location;
      continue;
    }
    const page = await response.text();
    const prompt = /name="prompt" value="(\w+)"/.exec(page)?.[1];
    if (response.status !== 200 || prompt === undefined) {
      throw new Error(`fake google: unexpected ${response.status} at ${url.pathname}: ${page.slice(0, 300)}`);
    }
    form = prompt === 'login' ? { prompt, login: sub, password: 'any' } : { prompt };
  }
  throw new Error('fake google: too many hops');
}
