import { createRemoteJWKSet, jwtVerify } from 'jose';
import * as oauth from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InternalTokenService } from '../../src/proxy/internal-token.service';
import { AccessTokenService } from '../../src/session/access-token.service';
import { ADMIN_EMAIL, ADMIN_PASSWORD, signinAdmin } from '../support/admin-fixtures';
import { bootApp, type TestApp } from '../support/app';
import { signupUser } from '../support/auth-flows';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { http } from '../support/http';
import { freePort } from '../support/process';
import { NATS_URL, servicesAvailable } from '../support/services';

const available = servicesAvailable({ postgres: true, nats: true });

interface Client {
  id: string;
  clientId: string;
  secret: string;
}

const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
const form = (fields: Record<string, string>, headers: Record<string, string> = {}) => ({
  body: new URLSearchParams(fields).toString(),
  headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
});

describe.skipIf(!available)('standard OAuth endpoints (RFC 8414, 7662, 7009) with jose and openid-client', () => {
  let db: TestDatabase;
  let a: TestApp;
  let b: TestApp;
  let issuer: string;
  let root: string;
  let introspector: Client;
  let plain: Client;

  async function serviceAccount(name: string, role?: string): Promise<Client> {
    const created = await http(a.url, 'POST', '/admin/service-accounts', { token: root, json: { name } });
    expect(created.status, created.text).toBe(201);
    if (role !== undefined) {
      const assigned = await http(a.url, 'POST', '/admin/assignments', {
        token: root,
        json: { principal_id: created.json.id, tenant_id: null, role_id: role },
      });
      expect(assigned.status, assigned.text).toBe(201);
    }
    return { id: created.json.id, clientId: created.json.client_id, secret: created.json.client_secret };
  }

  const discover = (client: { clientId: string; secret?: string }, auth?: oauth.ClientAuth, server = issuer) =>
    oauth.discovery(new URL(server), client.clientId, client.secret, auth, {
      algorithm: 'oauth2',
      execute: [oauth.allowInsecureRequests],
    });

  beforeAll(async () => {
    db = await createTestDatabase();
    const port = await freePort();
    issuer = `http://127.0.0.1:${port}`;
    const env = {
      DATABASE_URL: db.url,
      NATS_URL,
      MASTER_KEY: Buffer.alloc(32, 12).toString('base64'),
      PUBLIC_URL: issuer,
      AUTH_IP_LIMIT: '100000',
      BOOTSTRAP_ADMIN_EMAIL: ADMIN_EMAIL,
      BOOTSTRAP_ADMIN_PASSWORD: ADMIN_PASSWORD,
    };
    a = await bootApp({ ...env, PORT: String(port) });
    b = await bootApp(env);
    root = await signinAdmin(a.url);
    const role = await http(a.url, 'POST', '/admin/roles', {
      token: root,
      json: { name: 'token-introspector', tenant_id: null, grants: ['iam.tokens.introspect'] },
    });
    expect(role.status, role.text).toBe(201);
    introspector = await serviceAccount('resource-server', role.json.id);
    plain = await serviceAccount('no-introspection');
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await db?.drop();
  });

  describe('GET /.well-known/oauth-authorization-server', () => {
    it('publishes the issuer, keys and endpoints, and jose verifies a token with the keys it names', async () => {
      const result = await http(a.url, 'GET', '/.well-known/oauth-authorization-server');
      expect(result.status).toBe(200);
      expect(result.headers.get('cache-control')).toMatch(/max-age=\d+/);
      expect(result.json).toMatchObject({
        issuer,
        jwks_uri: `${issuer}/.well-known/jwks.json`,
        token_endpoint: `${issuer}/v1/auth/token`,
        introspection_endpoint: `${issuer}/v1/auth/introspect`,
        revocation_endpoint: `${issuer}/v1/auth/revoke`,
        grant_types_supported: ['client_credentials'],
        response_types_supported: [],
        token_endpoint_auth_methods_supported: expect.arrayContaining(['client_secret_basic', 'client_secret_post']),
      });
      const user = await signupUser(a.url);
      const jwks = createRemoteJWKSet(new URL(result.json.jwks_uri as string));
      const { payload, protectedHeader } = await jwtVerify(user.accessToken, jwks, {
        issuer: result.json.issuer as string,
        audience: 'gatehouse',
        typ: 'at+jwt',
        algorithms: ['ES256'],
      });
      expect(protectedHeader.alg).toBe('ES256');
      expect(payload).toMatchObject({ sub: user.userId, sid: user.sessionId, principal_type: 'user' });
    });
  });

  describe('POST /v1/auth/token', () => {
    it('serves openid-client’s discovery and client-credentials grant, with the secret in the body or as HTTP Basic', async () => {
      for (const auth of [undefined, oauth.ClientSecretBasic(plain.secret)]) {
        const config = await discover(plain, auth);
        expect(config.serverMetadata().token_endpoint).toBe(`${issuer}/v1/auth/token`);
        const tokens = await oauth.clientCredentialsGrant(config);
        expect(tokens.token_type).toBe('bearer');
        expect(tokens.expires_in).toBe(600);
        const jwks = createRemoteJWKSet(new URL(config.serverMetadata().jwks_uri!));
        const { payload } = await jwtVerify(tokens.access_token, jwks, { issuer, audience: 'gatehouse', algorithms: ['ES256'] });
        expect(payload).toMatchObject({ sub: plain.id, principal_type: 'service_account' });
      }
    });

    it('accepts HTTP Basic with form-urlencoded credentials, as RFC 6749 §2.3.1 writes them', async () => {
      const result = await http(
        a.url,
        'POST',
        '/v1/auth/token',
        form({ grant_type: 'client_credentials' }, { authorization: basic(plain.clientId, plain.secret) }),
      );
      expect(result.status, result.text).toBe(200);
      expect(result.headers.get('cache-control')).toBe('no-store');
    });

    it('answers a wrong secret with 401 invalid_client that openid-client reads, and a Basic challenge when Basic was used', async () => {
      const wrong = { ...plain, secret: 'not-the-secret' };
      const inPost = await oauth.clientCredentialsGrant(await discover(wrong)).catch((caught: unknown) => caught);
      expect(inPost).toBeInstanceOf(oauth.ResponseBodyError);
      expect(inPost).toMatchObject({ error: 'invalid_client', status: 401, cause: { code: 'invalid_credentials' } });
      // with Basic, RFC 6749 §5.2 asks for the challenge, which openid-client reports as such
      const inBasic = await oauth
        .clientCredentialsGrant(await discover(wrong, oauth.ClientSecretBasic(wrong.secret)))
        .catch((caught: unknown) => caught);
      expect(inBasic).toBeInstanceOf(oauth.WWWAuthenticateChallengeError);
      expect(inBasic).toMatchObject({ status: 401, cause: [{ scheme: 'basic' }] });
      const viaBasic = await http(
        a.url,
        'POST',
        '/v1/auth/token',
        form({ grant_type: 'client_credentials' }, { authorization: basic(plain.clientId, 'wrong') }),
      );
      expect(viaBasic.status).toBe(401);
      expect(viaBasic.headers.get('content-type')).toMatch(/^application\/json/);
      expect(viaBasic.headers.get('www-authenticate')).toMatch(/^Basic /);
      expect(viaBasic.json).toMatchObject({
        error: 'invalid_client',
        code: 'invalid_credentials',
        status: 401,
        type: 'urn:gatehouse:error:invalid_credentials',
        title: 'Invalid credentials',
      });
      expect(typeof viaBasic.json.request_id).toBe('string');
      const inBody = await http(a.url, 'POST', '/v1/auth/token', {
        json: { grant_type: 'client_credentials', client_id: plain.clientId, client_secret: 'wrong' },
      });
      expect(inBody.status).toBe(401);
      expect(inBody.json).toMatchObject({ error: 'invalid_client', code: 'invalid_credentials' });
      expect(inBody.headers.get('www-authenticate')).toBeNull();
    });

    it('maps a grant other than client_credentials to unsupported_grant_type and a malformed request to invalid_request', async () => {
      const password = await http(
        a.url,
        'POST',
        '/v1/auth/token',
        form({ grant_type: 'password', username: 'someone', password: 'secret', client_id: plain.clientId, client_secret: plain.secret }),
      );
      expect(password.status).toBe(400);
      expect(password.headers.get('content-type')).toMatch(/^application\/json/);
      expect(password.json).toMatchObject({ error: 'unsupported_grant_type', code: 'validation_failed' });
      const config = await discover(plain);
      const refused = await oauth.genericGrantRequest(config, 'urn:example:grant', {}).catch((caught: unknown) => caught);
      expect(refused).toMatchObject({ error: 'unsupported_grant_type', status: 400 });

      const missing = await http(a.url, 'POST', '/v1/auth/token', form({ client_id: plain.clientId, client_secret: plain.secret }));
      expect(missing.status).toBe(400);
      expect(missing.json).toMatchObject({ error: 'invalid_request', code: 'validation_failed' });
      const both = await http(
        a.url,
        'POST',
        '/v1/auth/token',
        form(
          { grant_type: 'client_credentials', client_id: plain.clientId, client_secret: plain.secret },
          { authorization: basic(plain.clientId, plain.secret) },
        ),
      );
      expect(both.status).toBe(400);
      expect(both.json).toMatchObject({ error: 'invalid_request', code: 'validation_failed' });
      const malformed = await http(a.url, 'POST', '/v1/auth/token', {
        body: '{"grant_type":',
        headers: { 'content-type': 'application/json' },
      });
      expect(malformed.status).toBe(400);
      expect(malformed.json).toMatchObject({ error: 'invalid_request', code: 'malformed_json' });
    });

    it('leaves the problem+json envelope of other endpoints alone', async () => {
      const signin = await http(a.url, 'POST', '/v1/auth/signin', {
        json: { email: 'nobody@example.com', password: 'wrong password 1234' },
      });
      expect(signin.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(signin.json).not.toHaveProperty('error');
    });
  });

  describe('POST /v1/auth/introspect', () => {
    it('describes a live user token to openid-client, and a service account’s token without sid', async () => {
      const user = await signupUser(a.url);
      const config = await discover(introspector);
      const info = await oauth.tokenIntrospection(config, user.accessToken);
      const claims = JSON.parse(Buffer.from(user.accessToken.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
      expect(info).toEqual({
        active: true,
        sub: user.userId,
        sid: user.sessionId,
        exp: claims.exp,
        iat: claims.iat,
        iss: issuer,
        principal_type: 'user',
        token_type: 'Bearer',
      });
      const machine = await oauth.clientCredentialsGrant(await discover(plain));
      const viaBasic = await oauth.tokenIntrospection(
        await discover(introspector, oauth.ClientSecretBasic(introspector.secret)),
        machine.access_token,
      );
      expect(viaBasic).toMatchObject({ active: true, sub: plain.id, principal_type: 'service_account', token_type: 'Bearer' });
      expect(viaBasic).not.toHaveProperty('sid');
    });

    it('answers {"active": false} for refresh tokens, garbage, expired, foreign-audience and upstream tokens', async () => {
      const user = await signupUser(a.url);
      const accessTokens = a.gatehouse.app.get(AccessTokenService);
      const expired = await accessTokens.mint({
        sub: user.userId,
        sid: user.sessionId,
        amr: ['pwd'],
        principalType: 'user',
        notAfter: new Date(Date.now() - 120_000),
      });
      const upstream = await a.gatehouse.app
        .get(InternalTokenService)
        .mint('aggregate', { id: user.userId, type: 'user', sessionId: user.sessionId, amr: ['pwd'] }, 'acme');
      for (const token of [user.refreshToken, 'not-a-token', expired.token, upstream, `${user.accessToken}x`]) {
        const result = await http(
          a.url,
          'POST',
          '/v1/auth/introspect',
          form({ token }, { authorization: basic(introspector.clientId, introspector.secret) }),
        );
        expect(result.status, result.text).toBe(200);
        expect(result.json).toEqual({ active: false });
      }
    });

    it('is inactive on replica B at once when the session is signed out on replica A', async () => {
      const user = await signupUser(a.url);
      const ask = (base: string) =>
        http(base, 'POST', '/v1/auth/introspect', {
          json: { token: user.accessToken, client_id: introspector.clientId, client_secret: introspector.secret },
        });
      expect((await ask(b.url)).json.active).toBe(true);
      expect((await http(a.url, 'POST', '/v1/auth/signout', { token: user.accessToken, json: {} })).status).toBe(204);
      // no waiting: B reads the session's state, not only the revocation event
      expect((await ask(b.url)).json).toEqual({ active: false });
    });

    it('refuses bad client credentials with 401 invalid_client and a Basic challenge, and a client without the right with 403', async () => {
      const user = await signupUser(a.url);
      for (const request of [
        form({ token: user.accessToken }, { authorization: basic(introspector.clientId, 'wrong') }),
        form({ token: user.accessToken, client_id: introspector.clientId, client_secret: 'wrong' }),
        form({ token: user.accessToken }),
      ]) {
        const result = await http(a.url, 'POST', '/v1/auth/introspect', request);
        expect(result.status).toBe(401);
        expect(result.headers.get('www-authenticate')).toMatch(/^Basic /);
        expect(result.headers.get('content-type')).toMatch(/^application\/json/);
        expect(result.json).toMatchObject({ error: 'invalid_client', code: 'invalid_credentials' });
      }
      const denied = await oauth.tokenIntrospection(await discover(plain), user.accessToken).catch((caught: unknown) => caught);
      expect(denied).toBeInstanceOf(oauth.ResponseBodyError);
      expect(denied).toMatchObject({ status: 403, cause: { code: 'forbidden' } });
      // a user's own token is no client credential
      const asUser = await http(a.url, 'POST', '/v1/auth/introspect', { token: user.accessToken, json: { token: user.accessToken } });
      expect(asUser.status).toBe(401);
      const missing = await http(
        a.url,
        'POST',
        '/v1/auth/introspect',
        form({}, { authorization: basic(introspector.clientId, introspector.secret) }),
      );
      expect(missing.status).toBe(400);
      expect(missing.json).toMatchObject({ error: 'invalid_request', code: 'validation_failed' });
    });
  });

  describe('POST /v1/auth/revoke', () => {
    it('revokes the refresh token’s session through openid-client: refresh refused, access token inactive', async () => {
      const user = await signupUser(a.url);
      await oauth.tokenRevocation(await discover({ clientId: 'a-public-app' }, oauth.None()), user.refreshToken);
      const refresh = await http(b.url, 'POST', '/v1/auth/refresh', { json: { refresh_token: user.refreshToken } });
      expect(refresh.status).toBe(401);
      expect(refresh.json.code).toBe('invalid_grant');
      const info = await http(
        b.url,
        'POST',
        '/v1/auth/introspect',
        form({ token: user.accessToken }, { authorization: basic(introspector.clientId, introspector.secret) }),
      );
      expect(info.json).toEqual({ active: false });
      const rows = await db.query<{ revoke_reason: string }>(`SELECT revoke_reason FROM sessions WHERE id = $1`, [user.sessionId]);
      expect(rows.rows[0]!.revoke_reason).toBe('oauth_revoke');
    });

    it('answers 200 for unknown tokens and access tokens alike, and invalid_request without a token', async () => {
      const user = await signupUser(a.url);
      for (const token of ['unknown-token', user.accessToken]) {
        const result = await http(a.url, 'POST', '/v1/auth/revoke', form({ token, token_type_hint: 'refresh_token' }));
        expect(result.status).toBe(200);
      }
      expect((await http(a.url, 'GET', '/v1/auth/me', { token: user.accessToken })).status).toBe(200);
      const missing = await http(a.url, 'POST', '/v1/auth/revoke', { json: {} });
      expect(missing.status).toBe(400);
      expect(missing.headers.get('content-type')).toMatch(/^application\/json/);
      expect(missing.json).toMatchObject({ error: 'invalid_request', code: 'validation_failed' });
    });
  });
});
