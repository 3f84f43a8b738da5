import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootAppOnTestDatabase, type TestApp } from '../support/app';
import {
  bootstrapAdminEnv,
  enrolTotp,
  passwordStep,
  signin,
  signinAdmin,
  signinSession,
  signupUser,
  tokenFromOutbox,
  waitForMail,
} from '../support/auth-flows';
import { type TestDatabase } from '../support/database';
import { http, uniqueEmail, type HttpResult } from '../support/http';
import { servicesAvailable } from '../support/services';
import { totpCode } from '../support/totp-codes';

const available = servicesAvailable({ postgres: true, nats: true });

const expectProblem = (result: HttpResult, status: number, code: string) => {
  expect(result.status, result.text).toBe(status);
  expect(result.json).toMatchObject({ type: `urn:gatehouse:error:${code}`, status, code });
};

/**
 * "Account changes happen silently" (issue 11): every change to how an account signs in is
 * mailed to its owner (read from the dev outbox), second-factor changes need a recent
 * authentication (SELF_REAUTH_MAX_AGE) and end the user's other sessions.
 */
describe.skipIf(!available)('account-change mails and second-factor step-up', () => {
  let db: TestDatabase;
  let app: TestApp;
  let base: string;
  let close: () => Promise<void>;

  beforeAll(async () => {
    ({ db, app, close } = await bootAppOnTestDatabase(bootstrapAdminEnv()));
    base = app.url;
  });
  afterAll(() => close?.());

  const ageSession = (sessionId: string, seconds: number) =>
    db.query(`UPDATE sessions SET authenticated_at = now() - make_interval(secs => $2) WHERE id = $1`, [sessionId, seconds]);

  it('mails TOTP enrolment and ends the other sessions; regenerating codes and using one are mailed', async () => {
    const user = await signupUser(base, uniqueEmail('notice-totp'));
    const other = await signinSession(base, user);

    const totp = await enrolTotp(base, user);
    await waitForMail(app.dataDir, user.email, 'Two-step verification was turned on');
    // the other session is gone on refresh and on its access token; this one still works
    expect((await http(base, 'POST', '/v1/auth/refresh', { json: { refresh_token: other.refreshToken } })).status).toBe(401);
    expect((await http(base, 'GET', '/v1/auth/me', { token: other.accessToken })).status).toBe(401);
    expect((await http(base, 'GET', '/v1/auth/me', { token: user.accessToken })).status).toBe(200);

    const regenerated = await http(base, 'POST', '/v1/auth/mfa/recovery-codes', {
      token: user.accessToken,
      json: { code: totpCode(totp.secret, totp.lastStep + 1) },
    });
    expect(regenerated.status, regenerated.text).toBe(200);
    await waitForMail(app.dataDir, user.email, 'New recovery codes were created');

    const first = await passwordStep(base, user);
    const second = await http(base, 'POST', '/v1/auth/signin/mfa', {
      json: { mfa_token: first.mfa_token, recovery_code: regenerated.json.recovery_codes[0] },
    });
    expect(second.status, second.text).toBe(200);
    const mail = await waitForMail(app.dataDir, user.email, 'A recovery code was used');
    // the mails say what happened and carry no secret
    expect(mail).not.toContain(regenerated.json.recovery_codes[0]);
    expect(mail).not.toContain(totp.secret);
  });

  it('refuses enrol, regenerate and disable without a recent authentication (403 reauth_required), then allows them after a reauth', async () => {
    const user = await signupUser(base, uniqueEmail('notice-reauth'));
    const totp = await enrolTotp(base, user);
    await ageSession(user.sessionId, 301);
    expectProblem(
      await http(base, 'POST', '/v1/auth/mfa/recovery-codes', {
        token: user.accessToken,
        json: { code: totpCode(totp.secret, totp.lastStep + 1) },
      }),
      403,
      'reauth_required',
    );
    expectProblem(
      await http(base, 'DELETE', '/v1/auth/mfa/totp', { token: user.accessToken, json: { recovery_code: totp.recoveryCodes[0] } }),
      403,
      'reauth_required',
    );
    // nothing was spent by the refusals: the recovery code still works for the reauth
    const reauth = await http(base, 'POST', '/v1/auth/reauth', { token: user.accessToken, json: { recovery_code: totp.recoveryCodes[0] } });
    expect(reauth.status, reauth.text).toBe(204);
    const disabled = await http(base, 'DELETE', '/v1/auth/mfa/totp', {
      token: user.accessToken,
      json: { recovery_code: totp.recoveryCodes[1] },
    });
    expect(disabled.status, disabled.text).toBe(204);
    await waitForMail(app.dataDir, user.email, 'Two-step verification was turned off');

    // enrolling again also needs a recent authentication
    await ageSession(user.sessionId, 301);
    expectProblem(await http(base, 'POST', '/v1/auth/mfa/totp/enroll', { token: user.accessToken }), 403, 'reauth_required');
    expect((await http(base, 'POST', '/v1/auth/reauth', { token: user.accessToken, json: { password: user.password } })).status).toBe(204);
    expect((await http(base, 'POST', '/v1/auth/mfa/totp/enroll', { token: user.accessToken })).status).toBe(200);
  });

  it('mails a password reset, a password change, a password set by an admin and an MFA reset by an admin', async () => {
    const user = await signupUser(base, uniqueEmail('notice-password'));
    const startedAt = Date.now() - 1000;
    expect((await http(base, 'POST', '/v1/auth/forgot', { json: { email: user.email } })).status).toBe(202);
    const token = await tokenFromOutbox(app.dataDir, user.email, 'Reset your password', startedAt);
    const reset = await http(base, 'POST', '/v1/auth/reset', { json: { token, new_password: 'a brand new passphrase for resets 77' } });
    expect(reset.status, reset.text).toBe(204);
    await waitForMail(app.dataDir, user.email, 'Your password was reset');

    const signedIn = await signin(base, user.email, 'a brand new passphrase for resets 77');
    const changed = await http(base, 'POST', '/v1/auth/password', {
      token: signedIn.json.access_token,
      json: { current_password: 'a brand new passphrase for resets 77', new_password: 'yet another fresh passphrase 4242' },
    });
    expect(changed.status, changed.text).toBe(204);
    await waitForMail(app.dataDir, user.email, 'Your password was changed');

    const admin = await signinAdmin(base);
    const set = await http(base, 'PUT', `/admin/users/${user.userId}/password`, {
      token: admin,
      json: { password: 'an administrator chose this one 5150' },
    });
    expect(set.status, set.text).toBe(204);
    await waitForMail(app.dataDir, user.email, 'An administrator set your password');

    const mfaUser = await signupUser(base, uniqueEmail('notice-mfa-reset'));
    await enrolTotp(base, mfaUser);
    expect((await http(base, 'POST', `/admin/users/${mfaUser.userId}/mfa/reset`, { token: admin })).status).toBe(204);
    await waitForMail(app.dataDir, mfaUser.email, 'An administrator reset your two-step verification');
  });
});
