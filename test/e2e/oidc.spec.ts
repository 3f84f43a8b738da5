import { generateKeyPairSync } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, importJWK, SignJWT, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, type TestApp } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { startFakeGoogle, type FakeGoogle, type GoogleAccount } from '../support/fake-google';
import { mailsTo, signinAdmin, waitForMail } from '../support/auth-flows';
import { decodeJwtPart, http, STRONG_PASSWORD, uniqueEmail, type HttpResult } from '../support/http';
import { freePort } from '../support/process';
import { NATS_URL, servicesAvailable } from '../support/services';
import { settledStep, totpCode } from '../support/totp-codes';

const available = servicesAvailable({ postgres: true, nats: true });

const RETURN_TO = 'https://app.example.com/auth/done';
const ADMIN_EMAIL = 'oidc-admin@example.com';
const ADMIN_PASSWORD = 'admin password for the oidc suite 7';

const expectProblem = (result: HttpResult, status: number, code: string) => {
  expect(result.status, result.text).toBe(status);
  expect(result.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(result.json).toMatchObject({ type: `urn:gatehouse:error:${code}`, status, code });
};

let subjects = 0;
function newAccount(overrides: Partial<GoogleAccount> = {}): GoogleAccount {
  subjects += 1;
  return { sub: `g-${Date.now()}-${subjects}`, email: uniqueEmail('google'), email_verified: true, name: 'Ada Lovelace', ...overrides };
}

describe.skipIf(!available)('Google sign-in (OIDC) against a real OpenID provider', () => {
  let db: TestDatabase;
  let app: TestApp;
  let google: FakeGoogle;
  let adminToken: string;

  const count = async (sql: string, params: unknown[] = []) => Number((await db.query<{ n: string }>(sql, params)).rows[0]!.n);

  // the test's own browser: the binding cookie `start` sets travels back to the callback
  let browserCookie: string | undefined;
  const cookieOf = (result: HttpResult): string => {
    const set = result.headers.getSetCookie().find((cookie) => cookie.startsWith('gh_oidc='));
    expect(set, 'start sets the browser-binding cookie').toBeDefined();
    return set!.split(';')[0]!;
  };

  /** Starts a flow on Gatehouse (sign-in, or link with `token`) and returns the provider URL. */
  const start = async (options: { returnTo?: string; token?: string; cookie?: string | null } = {}): Promise<URL> => {
    const path = options.token === undefined ? '/v1/auth/oidc/google/start' : '/v1/auth/oidc/google/link/start';
    const body = options.returnTo === undefined ? {} : { return_to: options.returnTo };
    const cookie = options.cookie === undefined ? browserCookie : (options.cookie ?? undefined);
    const result = await http(app.url, 'POST', path, { json: body, token: options.token, headers: cookie === undefined ? {} : { cookie } });
    expect(result.status, result.text).toBe(200);
    if (options.cookie === undefined) browserCookie = cookieOf(result);
    return new URL(result.json.authorization_url);
  };

  /** The browser's arrival at Gatehouse's callback, as the provider redirected it. */
  const arrive = (callback: URL, cookie: string | null = browserCookie ?? null) =>
    http(app.url, 'GET', callback.pathname + callback.search, { headers: cookie === null ? {} : { cookie } });

  const googleSignIn = async (account: GoogleAccount, options: { returnTo?: string; token?: string } = {}) =>
    arrive(await google.login((await start(options)).href, account.sub));

  const signUpWithPassword = async (email: string, verified: boolean) => {
    const result = await http(app.url, 'POST', '/v1/auth/signup', { json: { email, password: STRONG_PASSWORD } });
    expect(result.status, result.text).toBe(201);
    // stands in for clicking the emailed link (covered by the password suites)
    if (verified) await db.query('UPDATE users SET email_verified_at = now() WHERE id = $1', [result.json.user.id]);
    return { userId: result.json.user.id as string, accessToken: result.json.access_token as string };
  };

  beforeAll(async () => {
    db = await createTestDatabase();
    const port = await freePort();
    const redirectUri = `http://127.0.0.1:${port}/v1/auth/oidc/google/callback`;
    google = await startFakeGoogle({ redirectUri, behindProxy: true });
    app = await bootApp({
      DATABASE_URL: db.url,
      NATS_URL,
      PORT: String(port),
      AUTH_IP_LIMIT: '100000',
      OIDC_GOOGLE_ISSUER: google.issuer,
      OIDC_GOOGLE_CLIENT_ID: google.clientId,
      OIDC_GOOGLE_CLIENT_SECRET: google.clientSecret,
      OIDC_GOOGLE_REDIRECT_URI: redirectUri,
      OIDC_RETURN_TO_ALLOWLIST: 'https://app.example.com/auth/,http://localhost:5173/cb',
      BOOTSTRAP_ADMIN_EMAIL: ADMIN_EMAIL,
      BOOTSTRAP_ADMIN_PASSWORD: ADMIN_PASSWORD,
    });
    adminToken = await signinAdmin(app.url, ADMIN_EMAIL, ADMIN_PASSWORD);
  });
  afterAll(async () => {
    await app?.close();
    await google?.close();
    await db?.drop();
  });

  it('sends the browser to the provider with PKCE S256, state and nonce, keeping state server-side for 10 minutes', async () => {
    const url = await start();
    expect(url.origin).toBe(google.issuer);
    const params = url.searchParams;
    expect(params.get('response_type')).toBe('code');
    expect(params.get('client_id')).toBe(google.clientId);
    expect(params.get('scope')).toBe('openid email profile');
    expect(params.get('code_challenge_method')).toBe('S256');
    expect(params.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(params.get('state')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(params.get('nonce')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const rows = await db.query<{ state_hash: string; sealed: string; ttl: number; used_at: Date | null }>(
      `SELECT state_hash, sealed, EXTRACT(EPOCH FROM expires_at - created_at)::int AS ttl, used_at FROM oidc_states ORDER BY created_at DESC LIMIT 1`,
    );
    const row = rows.rows[0]!;
    expect(row.ttl).toBe(600);
    expect(row.used_at).toBeNull();
    // stored as a hash, and the verifier and nonce only sealed
    expect(row.state_hash).not.toBe(params.get('state'));
    expect(row.sealed).not.toContain(params.get('nonce')!);
  });

  it('creates a new user for an unknown Google account and signs it in with amr ["google"]', async () => {
    const account = google.addAccount(newAccount());
    const result = await googleSignIn(account);
    expect(result.status, result.text).toBe(200);
    expect(result.headers.get('cache-control')).toBe('no-store');
    expect(result.json).toMatchObject({
      token_type: 'Bearer',
      user: { email: account.email, email_verified: true, display_name: 'Ada Lovelace' },
    });
    expect(decodeJwtPart(result.json.access_token, 1).amr).toEqual(['google']);
    const identity = await db.query('SELECT user_id, issuer, subject FROM external_identities WHERE subject = $1', [account.sub]);
    expect(identity.rows).toEqual([{ user_id: result.json.user.id, issuer: google.issuer, subject: account.sub }]);
    expect(await count('SELECT count(*) AS n FROM password_credentials WHERE user_id = $1', [result.json.user.id])).toBe(0);
    const actions = await db.query<{ action: string }>('SELECT action FROM audit_records WHERE actor_id = $1 ORDER BY seq', [
      result.json.user.id,
    ]);
    expect(actions.rows.map((row) => row.action)).toEqual(['user.signup', 'identity.linked', 'auth.oidc_signin', 'auth.signin']);
    const me = await http(app.url, 'GET', '/v1/auth/me', { token: result.json.access_token });
    expect(me.json).toMatchObject({ user: { email: account.email }, mfa: { totp: false } });
  });

  it('signs a returning Google account into the same user, whatever its email says now', async () => {
    const account = google.addAccount(newAccount());
    const first = await googleSignIn(account);
    expect(first.status, first.text).toBe(200);
    account.email = uniqueEmail('renamed');
    const second = await googleSignIn(account);
    expect(second.status, second.text).toBe(200);
    expect(second.json.user.id).toBe(first.json.user.id);
    expect(second.json.session_id).not.toBe(first.json.session_id);
    expect(await count('SELECT count(*) AS n FROM external_identities WHERE subject = $1', [account.sub])).toBe(1);
    expect(await count('SELECT count(*) AS n FROM users WHERE email = $1', [account.email])).toBe(0);
  });

  it('links automatically when Google and Gatehouse both verified the email', async () => {
    const email = uniqueEmail('verified');
    const local = await signUpWithPassword(email, true);
    const account = google.addAccount(newAccount({ email: email.toUpperCase(), email_verified: true }));
    const result = await googleSignIn(account);
    expect(result.status, result.text).toBe(200);
    expect(result.json.user.id).toBe(local.userId);
    expect(await count('SELECT count(*) AS n FROM external_identities WHERE user_id = $1', [local.userId])).toBe(1);
    const linked = await db.query(`SELECT changes FROM audit_records WHERE action = 'identity.linked' AND target_id = $1`, [local.userId]);
    expect(linked.rows[0]!.changes).toMatchObject({ how: 'verified_email', issuer: google.issuer });
  });

  it.each([
    ['Google did not verify the email', false, true],
    ['Gatehouse did not verify the email', true, false],
  ])('answers 409 link_requires_signin when %s, then links through a signed-in link flow', async (_case, googleVerified, localVerified) => {
    const email = uniqueEmail('unverified');
    const local = await signUpWithPassword(email, localVerified);
    const account = google.addAccount(newAccount({ email, email_verified: googleVerified }));
    const sessionsBefore = await count('SELECT count(*) AS n FROM sessions');

    expectProblem(await googleSignIn(account), 409, 'link_requires_signin');
    expect(await count('SELECT count(*) AS n FROM external_identities WHERE subject = $1', [account.sub])).toBe(0);
    expect(await count('SELECT count(*) AS n FROM sessions')).toBe(sessionsBefore);

    // the owner signs in with the password and links Google explicitly
    const linked = await googleSignIn(account, { token: local.accessToken });
    expect(linked.status, linked.text).toBe(200);
    expect(linked.json).toMatchObject({ linked: true, identity: { provider: 'google', issuer: google.issuer, subject: account.sub } });
    expect(linked.json.access_token).toBeUndefined();

    const signedIn = await googleSignIn(account);
    expect(signedIn.status, signedIn.text).toBe(200);
    expect(signedIn.json.user.id).toBe(local.userId);
  });

  it('refuses to link a Google account that already belongs to another user', async () => {
    const account = google.addAccount(newAccount());
    expect((await googleSignIn(account)).status).toBe(200);
    const other = await signUpWithPassword(uniqueEmail('other'), true);
    expectProblem(await googleSignIn(account, { token: other.accessToken }), 409, 'conflict');
    expect(await count('SELECT count(*) AS n FROM external_identities WHERE user_id = $1', [other.userId])).toBe(0);
  });

  it('requires a signed-in user to start linking', async () => {
    expectProblem(await http(app.url, 'POST', '/v1/auth/oidc/google/link/start', { json: {} }), 401, 'unauthenticated');
  });

  it('refuses a replayed state with 401 invalid_grant and creates nothing', async () => {
    const account = google.addAccount(newAccount());
    const callback = await google.login((await start()).href, account.sub);
    expect((await arrive(callback)).status).toBe(200);
    const sessions = await count('SELECT count(*) AS n FROM sessions');
    expectProblem(await arrive(callback), 401, 'invalid_grant');
    expect(await count('SELECT count(*) AS n FROM sessions')).toBe(sessions);
  });

  it('refuses an expired state', async () => {
    const account = google.addAccount(newAccount());
    const callback = await google.login((await start()).href, account.sub);
    await db.query(`UPDATE oidc_states SET expires_at = now() - interval '1 second' WHERE used_at IS NULL`);
    expectProblem(await arrive(callback), 401, 'invalid_grant');
    expect(await count('SELECT count(*) AS n FROM external_identities WHERE subject = $1', [account.sub])).toBe(0);
  });

  it('refuses an ID token whose nonce is not the one stored for the state', async () => {
    const account = google.addAccount(newAccount());
    const url = await start();
    url.searchParams.set('nonce', 'attacker-chosen-nonce-0123456789abcdef');
    const result = await arrive(await google.login(url.href, account.sub));
    expectProblem(result, 401, 'invalid_grant');
    expect(await count('SELECT count(*) AS n FROM users WHERE email = $1', [account.email])).toBe(0);
  });

  it("refuses a code presented with another flow's state (PKCE and nonce do not match)", async () => {
    const victim = google.addAccount(newAccount());
    const mine = await google.login((await start()).href, victim.sub);
    const other = await start();
    const mixed = new URL(mine);
    mixed.searchParams.set('state', other.searchParams.get('state')!);
    expectProblem(await arrive(mixed), 401, 'invalid_grant');
    expect(await count('SELECT count(*) AS n FROM users WHERE email = $1', [victim.email])).toBe(0);
  });

  it('answers 401 invalid_grant when the user cancels at Google', async () => {
    const url = await start();
    const callback = `/v1/auth/oidc/google/callback?error=access_denied&state=${url.searchParams.get('state')}&iss=${encodeURIComponent(google.issuer)}`;
    expectProblem(await http(app.url, 'GET', callback, { headers: { cookie: browserCookie! } }), 401, 'invalid_grant');
  });

  it.each([
    'https://evil.example/auth/done',
    'https://app.example.com.evil.test/auth/done',
    'https://app.example.com/elsewhere',
    '//evil.example/auth/done',
    'javascript:alert(1)',
  ])('refuses return_to %s with 400 and stores nothing', async (returnTo) => {
    const states = await count('SELECT count(*) AS n FROM oidc_states');
    const result = await http(app.url, 'POST', '/v1/auth/oidc/google/start', { json: { return_to: returnTo } });
    expectProblem(result, 400, 'validation_failed');
    expect(result.json.errors).toEqual([{ path: 'return_to', message: expect.any(String) }]);
    expect(result.text).not.toContain('evil');
    expect(await count('SELECT count(*) AS n FROM oidc_states')).toBe(states);
  });

  it('redirects to return_to with a one-time 60-second login_code redeemed by /exchange', async () => {
    const account = google.addAccount(newAccount());
    const result = await googleSignIn(account, { returnTo: RETURN_TO });
    expect(result.status, result.text).toBe(302);
    const location = result.headers.get('location')!;
    expect(location.startsWith(`${RETURN_TO}#login_code=`)).toBe(true);
    const loginCode = decodeURIComponent(location.split('#login_code=')[1]!);
    const ttl = await db.query<{ ttl: number }>(
      'SELECT EXTRACT(EPOCH FROM expires_at - created_at)::int AS ttl FROM oidc_login_codes ORDER BY created_at DESC LIMIT 1',
    );
    expect(ttl.rows[0]!.ttl).toBe(60);
    // no session until the app redeems the code
    expect(await count('SELECT count(*) AS n FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.email = $1', [account.email])).toBe(
      0,
    );

    const exchanged = await http(app.url, 'POST', '/v1/auth/oidc/exchange', { json: { login_code: loginCode } });
    expect(exchanged.status, exchanged.text).toBe(200);
    expect(exchanged.json.user.email).toBe(account.email);
    expect(decodeJwtPart(exchanged.json.access_token, 1).amr).toEqual(['google']);
    expect(exchanged.headers.get('cache-control')).toBe('no-store');
    expectProblem(await http(app.url, 'POST', '/v1/auth/oidc/exchange', { json: { login_code: loginCode } }), 401, 'invalid_grant');
  });

  it('refuses an expired login_code', async () => {
    const account = google.addAccount(newAccount());
    const result = await googleSignIn(account, { returnTo: 'http://localhost:5173/cb' });
    expect(result.status).toBe(302);
    const loginCode = decodeURIComponent(result.headers.get('location')!.split('#login_code=')[1]!);
    await db.query(`UPDATE oidc_login_codes SET expires_at = now() - interval '1 second' WHERE used_at IS NULL`);
    expectProblem(await http(app.url, 'POST', '/v1/auth/oidc/exchange', { json: { login_code: loginCode } }), 401, 'invalid_grant');
  });

  it('never bypasses local MFA: Google sign-in of a user with TOTP answers MFA-pending', async () => {
    const email = uniqueEmail('mfa');
    const local = await signUpWithPassword(email, true);
    const enroll = await http(app.url, 'POST', '/v1/auth/mfa/totp/enroll', { token: local.accessToken });
    const step = await settledStep();
    const confirm = await http(app.url, 'POST', '/v1/auth/mfa/totp/confirm', {
      token: local.accessToken,
      json: { code: totpCode(enroll.json.secret, step - 1) },
    });
    expect(confirm.status, confirm.text).toBe(200);
    const account = google.addAccount(newAccount({ email, email_verified: true }));

    const pending = await googleSignIn(account);
    expect(pending.status, pending.text).toBe(200);
    expect(pending.json).toEqual({ mfa_required: true, mfa_token: expect.any(String), mfa_methods: ['totp', 'recovery_code'] });
    const done = await http(app.url, 'POST', '/v1/auth/signin/mfa', {
      json: { mfa_token: pending.json.mfa_token, code: totpCode(enroll.json.secret, step) },
    });
    expect(done.status, done.text).toBe(200);
    expect(done.json.user.id).toBe(local.userId);
    expect(decodeJwtPart(done.json.access_token, 1).amr).toEqual(['google', 'otp']);

    // and through return_to: the login code redeems to the MFA step, not to tokens
    const redirected = await googleSignIn(account, { returnTo: RETURN_TO });
    const loginCode = decodeURIComponent(redirected.headers.get('location')!.split('#login_code=')[1]!);
    const exchanged = await http(app.url, 'POST', '/v1/auth/oidc/exchange', { json: { login_code: loginCode } });
    expect(exchanged.json).toMatchObject({ mfa_required: true });
    expect(exchanged.json.access_token).toBeUndefined();
  });

  it('refuses to unlink the last way to sign in, and unlinks otherwise', async () => {
    const googleOnly = google.addAccount(newAccount());
    const signedIn = await googleSignIn(googleOnly);
    const userId = signedIn.json.user.id as string;
    const listed = await http(app.url, 'GET', `/admin/users/${userId}/identities`, { token: adminToken });
    expect(listed.status, listed.text).toBe(200);
    expect(listed.json.items).toHaveLength(1);
    const identityId = listed.json.items[0].id as string;
    expectProblem(await http(app.url, 'DELETE', `/admin/users/${userId}/identities/${identityId}`, { token: adminToken }), 409, 'conflict');
    expect(await count('SELECT count(*) AS n FROM external_identities WHERE id = $1', [identityId])).toBe(1);

    const email = uniqueEmail('withpassword');
    const local = await signUpWithPassword(email, true);
    const account = google.addAccount(newAccount({ email }));
    expect((await googleSignIn(account)).status).toBe(200);
    const identities = await http(app.url, 'GET', `/admin/users/${local.userId}/identities`, { token: adminToken });
    const removed = await http(app.url, 'DELETE', `/admin/users/${local.userId}/identities/${identities.json.items[0].id}`, {
      token: adminToken,
    });
    expect(removed.status, removed.text).toBe(204);
    expect(await count('SELECT count(*) AS n FROM external_identities WHERE user_id = $1', [local.userId])).toBe(0);
  });

  describe('verifying the ID token against the provider JWKS', () => {
    /** Re-signs the provider's ID token after `change`, with its own key unless `key` is given. */
    const forge = (change: (claims: JWTPayload) => JWTPayload, options: { kid?: string; foreignKey?: boolean } = {}) => {
      return async (idToken: string): Promise<string> => {
        const header = decodeProtectedHeader(idToken);
        const claims = change(decodeJwt(idToken));
        const key = options.foreignKey
          ? generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
          : await importJWK(google.signingKey as never, 'RS256');
        return new SignJWT(claims).setProtectedHeader({ ...header, alg: 'RS256', kid: options.kid ?? header.kid }).sign(key);
      };
    };
    const now = () => Math.floor(Date.now() / 1000);

    const refused = async (rewrite: (idToken: string) => Promise<string> | string) => {
      const account = google.addAccount(newAccount());
      const url = await start();
      const callback = await google.login(url.href, account.sub);
      google.rewriteIdToken = rewrite;
      let result: HttpResult;
      try {
        result = await arrive(callback);
      } finally {
        google.rewriteIdToken = undefined;
      }
      expectProblem(result, 401, 'invalid_grant');
      expect(await count('SELECT count(*) AS n FROM users WHERE email = $1', [account.email])).toBe(0);
      expect(await count('SELECT count(*) AS n FROM external_identities WHERE subject = $1', [account.sub])).toBe(0);
      return result;
    };

    it('accepts a token re-signed with the provider key and unchanged claims (the forging helper itself is sound)', async () => {
      const account = google.addAccount(newAccount());
      const callback = await google.login((await start()).href, account.sub);
      google.rewriteIdToken = forge((claims) => claims);
      try {
        expect((await arrive(callback)).status).toBe(200);
      } finally {
        google.rewriteIdToken = undefined;
      }
    });

    it('refuses a corrupted RS256 signature', async () => {
      await refused((idToken) => {
        const [header, payload, signature] = idToken.split('.');
        const bytes = Buffer.from(signature!, 'base64url');
        bytes[10] = bytes[10]! ^ 0xff;
        return `${header}.${payload}.${bytes.toString('base64url')}`;
      });
    });

    it('refuses a token signed by a key the JWKS does not hold (unknown kid)', async () => {
      await refused(forge((claims) => claims, { kid: 'rotated-away', foreignKey: true }));
    });

    it('refuses a token signed by another key under the known kid', async () => {
      await refused(forge((claims) => claims, { foreignKey: true }));
    });

    it('refuses an iat an hour in the future', async () => {
      await refused(forge((claims) => ({ ...claims, iat: now() + 3600, exp: now() + 7200 })));
    });

    it('refuses an expired token', async () => {
      await refused(forge((claims) => ({ ...claims, iat: now() - 1000, exp: now() - 600 })));
    });

    it('refuses an issuer that differs by a trailing slash', async () => {
      await refused(forge((claims) => ({ ...claims, iss: `${google.issuer}/` })));
    });

    it('refuses another audience, and an azp naming another client', async () => {
      await refused(forge((claims) => ({ ...claims, aud: 'someone-else' })));
      await refused(forge((claims) => ({ ...claims, azp: 'someone-else' })));
      await refused(forge((claims) => ({ ...claims, aud: [google.clientId, 'someone-else'] })));
    });

    it("answers 504 upstream_timeout when Google's token endpoint does not answer in time", async () => {
      const account = google.addAccount(newAccount());
      const callback = await google.login((await start()).href, account.sub);
      let release: () => void = () => undefined;
      google.rewriteIdToken = (idToken) => new Promise<string>((resolve) => (release = () => resolve(idToken)));
      try {
        expectProblem(await arrive(callback), 504, 'upstream_timeout');
      } finally {
        google.rewriteIdToken = undefined;
        release();
      }
      expect(await count('SELECT count(*) AS n FROM users WHERE email = $1', [account.email])).toBe(0);
    });

    it('refuses a token without the nonce of the flow', async () => {
      await refused(forge((claims) => ({ ...claims, nonce: 'another-nonce' })));
    });
  });

  describe('binding each flow to the browser that started it', () => {
    it('sets an HttpOnly, SameSite=Lax binding cookie on start and link/start, with no-store answers', async () => {
      const started = await http(app.url, 'POST', '/v1/auth/oidc/google/start', { json: {} });
      expect(started.status, started.text).toBe(200);
      expect(started.headers.get('cache-control')).toBe('no-store');
      const [cookie] = started.headers.getSetCookie();
      expect(cookie).toMatch(/^gh_oidc=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=600; HttpOnly; SameSite=Lax$/);
      const user = await signUpWithPassword(uniqueEmail('cookie'), true);
      const linking = await http(app.url, 'POST', '/v1/auth/oidc/google/link/start', { json: {}, token: user.accessToken });
      expect(linking.headers.getSetCookie()[0]).toMatch(/^gh_oidc=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=600; HttpOnly; SameSite=Lax$/);
    });

    it('refuses link hijacking: a link URL completed by another browser links nothing (401 invalid_grant)', async () => {
      const attacker = await signUpWithPassword(uniqueEmail('attacker'), true);
      const attackerCookie = cookieOf(
        await http(app.url, 'POST', '/v1/auth/oidc/google/link/start', { json: {}, token: attacker.accessToken }),
      );
      // the attacker starts a link for their own account and sends the authorization URL to the victim
      const linkUrl = await start({ token: attacker.accessToken, cookie: attackerCookie });
      const victim = google.addAccount(newAccount());
      const callback = await google.login(linkUrl.href, victim.sub);

      // the victim's browser: no binding cookie at all, then a cookie of its own flow
      expectProblem(await arrive(callback, null), 401, 'invalid_grant');
      const victimCookie = cookieOf(await http(app.url, 'POST', '/v1/auth/oidc/google/start', { json: {} }));
      const secondLink = await google.login((await start({ token: attacker.accessToken, cookie: attackerCookie })).href, victim.sub);
      expectProblem(await arrive(secondLink, victimCookie), 401, 'invalid_grant');
      expect(await count('SELECT count(*) AS n FROM external_identities WHERE subject = $1', [victim.sub])).toBe(0);
      expect(
        await count(`SELECT count(*) AS n FROM audit_records WHERE action = 'identity.linked' AND target_id = $1`, [attacker.userId]),
      ).toBe(0);

      // the victim's own Google sign-in later gets the victim a user of its own, not the attacker's
      const own = await googleSignIn(victim);
      expect(own.status, own.text).toBe(200);
      expect(own.json.user.id).not.toBe(attacker.userId);
    });

    it('refuses login CSRF: a callback URL opened by another browser signs nobody in', async () => {
      const attackerGoogle = google.addAccount(newAccount());
      const attackerCookie = cookieOf(await http(app.url, 'POST', '/v1/auth/oidc/google/start', { json: {} }));
      const url = await start({ cookie: attackerCookie });
      const callback = await google.login(url.href, attackerGoogle.sub);
      const sessions = await count('SELECT count(*) AS n FROM sessions');
      const users = await count('SELECT count(*) AS n FROM users');
      expectProblem(await arrive(callback, null), 401, 'invalid_grant');
      expect(await count('SELECT count(*) AS n FROM sessions')).toBe(sessions);
      expect(await count('SELECT count(*) AS n FROM users')).toBe(users);
      // the state is spent: even the attacker's own browser cannot finish this flow now
      expectProblem(await arrive(callback, attackerCookie), 401, 'invalid_grant');
    });

    it('GET start sets the cookie and redirects to Google; the return_to flow completes in that browser', async () => {
      const account = google.addAccount(newAccount());
      const navigation = await http(app.url, 'GET', `/v1/auth/oidc/google/start?return_to=${encodeURIComponent(RETURN_TO)}`);
      expect(navigation.status, navigation.text).toBe(302);
      expect(navigation.headers.get('cache-control')).toBe('no-store');
      const location = new URL(navigation.headers.get('location')!);
      expect(location.origin).toBe(google.issuer);
      const cookie = cookieOf(navigation);
      const callback = await google.login(location.href, account.sub);
      const back = await arrive(callback, cookie);
      expect(back.status, back.text).toBe(302);
      const loginCode = decodeURIComponent(back.headers.get('location')!.split('#login_code=')[1]!);
      const exchanged = await http(app.url, 'POST', '/v1/auth/oidc/exchange', { json: { login_code: loginCode } });
      expect(exchanged.status, exchanged.text).toBe(200);
      expect(exchanged.json.user.email).toBe(account.email);
      expectProblem(
        await http(app.url, 'GET', '/v1/auth/oidc/google/start?return_to=https%3A%2F%2Fevil.example%2F'),
        400,
        'validation_failed',
      );
    });

    it('uses the __Host- cookie with Secure when PUBLIC_URL is https', async () => {
      const secure = await bootApp({
        DATABASE_URL: db.url,
        NATS_URL,
        PUBLIC_URL: 'https://gatehouse.example.com',
        AUTH_IP_LIMIT: '100000',
        OIDC_GOOGLE_ISSUER: google.issuer,
        OIDC_GOOGLE_CLIENT_ID: google.clientId,
        OIDC_GOOGLE_CLIENT_SECRET: google.clientSecret,
        OIDC_GOOGLE_REDIRECT_URI: 'https://gatehouse.example.com/v1/auth/oidc/google/callback',
      });
      try {
        const started = await http(secure.url, 'POST', '/v1/auth/oidc/google/start', { json: {} });
        expect(started.status, started.text).toBe(200);
        expect(started.headers.getSetCookie()[0]).toMatch(
          /^__Host-gh_oidc=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=600; HttpOnly; SameSite=Lax; Secure$/,
        );
      } finally {
        await secure.close();
      }
    });
  });

  describe('telling the owner about links', () => {
    it('mails the owner when Google is linked through link/start and when it is unlinked', async () => {
      const email = uniqueEmail('mail-link');
      const local = await signUpWithPassword(email, true);
      const account = google.addAccount(newAccount());
      const linked = await googleSignIn(account, { token: local.accessToken });
      expect(linked.status, linked.text).toBe(200);
      const mail = await waitForMail(app.dataDir, email, 'Google sign-in was linked to your account');
      expect(mail).toContain('remove the Google identity');
      const removed = await http(app.url, 'DELETE', `/admin/users/${local.userId}/identities/${linked.json.identity.id}`, {
        token: adminToken,
      });
      expect(removed.status, removed.text).toBe(204);
      await waitForMail(app.dataDir, email, 'Google sign-in was removed from your account');
    });

    it('mails the owner and records it when a verified email links Google automatically', async () => {
      const email = uniqueEmail('mail-auto');
      const local = await signUpWithPassword(email, true);
      const account = google.addAccount(newAccount({ email, email_verified: true }));
      expect((await googleSignIn(account)).status).toBe(200);
      const mail = await waitForMail(app.dataDir, email, 'Google sign-in was linked to your account');
      expect(mail).toContain('verified email address is yours');
      const linked = await db.query(`SELECT changes FROM audit_records WHERE action = 'identity.linked' AND target_id = $1`, [
        local.userId,
      ]);
      expect(linked.rows[0]!.changes).toMatchObject({ how: 'verified_email' });
      // a brand-new Google user gets no link notice
      const fresh = google.addAccount(newAccount());
      expect((await googleSignIn(fresh)).status).toBe(200);
      expect(mailsTo(app.dataDir, fresh.email!).filter((text) => text.includes('linked to your account'))).toEqual([]);
    });
  });

  it('answers 502 when the provider is down at the callback, persists nothing, and the same callback works once it is back', async () => {
    const account = google.addAccount(newAccount());
    const callback = await google.login((await start()).href, account.sub);
    const tables = ['users', 'external_identities', 'sessions', 'oidc_login_codes', 'audit_records'];
    const before = await Promise.all(tables.map((table) => count(`SELECT count(*) AS n FROM ${table}`)));
    google.proxy!.cut();
    try {
      const result = await arrive(callback);
      expectProblem(result, 502, 'upstream_unavailable');
      expect(result.text).not.toContain('127.0.0.1');
      expect(await Promise.all(tables.map((table) => count(`SELECT count(*) AS n FROM ${table}`)))).toEqual(before);
      expect(
        await count(
          "SELECT count(*) AS n FROM oidc_states WHERE used_at IS NOT NULL AND created_at > now() - interval '1 minute' AND state_hash = encode(sha256($1::bytea), 'hex')",
          [callback.searchParams.get('state')],
        ),
      ).toBe(0);
    } finally {
      google.proxy!.restore();
    }
    const retried = await arrive(callback);
    expect(retried.status, retried.text).toBe(200);
    expect(retried.json.user.email).toBe(account.email);
  });
});

describe.skipIf(!available)('Google sign-in when the provider is unreachable or not configured', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('answers 502 at start when discovery fails, and stores no state', async () => {
    const deadPort = await freePort();
    const app = await bootApp({
      DATABASE_URL: db.url,
      NATS_URL,
      AUTH_IP_LIMIT: '100000',
      OIDC_GOOGLE_ISSUER: `http://127.0.0.1:${deadPort}`,
      OIDC_GOOGLE_CLIENT_ID: 'client',
      OIDC_GOOGLE_CLIENT_SECRET: 'secret',
      OIDC_GOOGLE_REDIRECT_URI: 'http://127.0.0.1:1/v1/auth/oidc/google/callback',
    });
    try {
      const result = await http(app.url, 'POST', '/v1/auth/oidc/google/start', { json: {} });
      expectProblem(result, 502, 'upstream_unavailable');
      expect(result.text).not.toContain(String(deadPort));
      expect(Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM oidc_states')).rows[0]!.n)).toBe(0);
    } finally {
      await app.close();
    }
  });

  it('answers 404 on every Google endpoint when the client is not configured', async () => {
    const app = await bootApp({ DATABASE_URL: db.url, NATS_URL, AUTH_IP_LIMIT: '100000' });
    try {
      const signup = await http(app.url, 'POST', '/v1/auth/signup', { json: { email: uniqueEmail(), password: STRONG_PASSWORD } });
      const token = signup.json.access_token as string;
      expectProblem(await http(app.url, 'POST', '/v1/auth/oidc/google/start', { json: {} }), 404, 'not_found');
      expectProblem(await http(app.url, 'GET', '/v1/auth/oidc/google/callback?code=x&state=y'), 404, 'not_found');
      // before any validation: a malformed request learns nothing either
      expectProblem(await http(app.url, 'GET', '/v1/auth/oidc/google/callback'), 404, 'not_found');
      expectProblem(
        await http(app.url, 'POST', '/v1/auth/oidc/google/start', { json: { return_to: 'https://evil.example/' } }),
        404,
        'not_found',
      );
      expectProblem(await http(app.url, 'POST', '/v1/auth/oidc/exchange', { json: { login_code: 'x' } }), 404, 'not_found');
      expectProblem(await http(app.url, 'POST', '/v1/auth/oidc/google/link/start', { json: {}, token }), 404, 'not_found');
    } finally {
      await app.close();
    }
  });
});
