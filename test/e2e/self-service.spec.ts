import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootAppOnTestDatabase, type TestApp } from '../support/app';
import {
  ADMIN_PASSWORD,
  bootstrapAdminEnv,
  mailsTo,
  signin as signinAt,
  signinAdmin,
  signinSession,
  signupUser,
  tokenFromOutbox,
  waitForMail,
} from '../support/auth-flows';
import { type TestDatabase } from '../support/database';
import { http, STRONG_PASSWORD, uniqueEmail } from '../support/http';
import { waitFor } from '../support/process';
import { servicesAvailable } from '../support/services';
import { settledStep, totpCode } from '../support/totp-codes';

const available = servicesAvailable({ postgres: true, nats: true });
const NEW_PASSWORD = 'a brand new passphrase for this account';

describe.skipIf(!available)('account self-service (CONTRACT §12)', () => {
  let db: TestDatabase;
  let app: TestApp;
  let base: string;
  let close: () => Promise<void>;

  beforeAll(async () => {
    ({ db, app, close } = await bootAppOnTestDatabase(bootstrapAdminEnv()));
    base = app.url;
  });
  afterAll(() => close?.());

  const signin = (email: string, password: string) => signinAt(base, email, password);
  const me = (user: { accessToken: string }) => http(base, 'GET', '/v1/auth/me', { token: user.accessToken });

  describe('POST /v1/auth/password', () => {
    it('changes the password with the current one, ends the other sessions, keeps this one and tells the owner', async () => {
      const user = await signupUser(base);
      const other = await signinSession(base, user);
      const changed = await http(base, 'POST', '/v1/auth/password', {
        token: user.accessToken,
        json: { current_password: user.password, new_password: NEW_PASSWORD },
      });
      expect(changed.status, changed.text).toBe(204);
      expect((await me(user)).status).toBe(200);
      expect((await me(other)).status).toBe(401);
      expect((await http(base, 'POST', '/v1/auth/refresh', { json: { refresh_token: other.refreshToken } })).json.code).toBe(
        'invalid_grant',
      );
      expect((await http(base, 'POST', '/v1/auth/refresh', { json: { refresh_token: user.refreshToken } })).status).toBe(200);
      expect((await signin(user.email, user.password)).status).toBe(401);
      expect((await signin(user.email, NEW_PASSWORD)).status).toBe(200);
      expect(await waitForMail(app.dataDir, user.email, 'Your password was changed')).toContain('If this was not you');
      const audit = await db.query(`SELECT changes FROM audit_records WHERE action = 'auth.password_changed' AND target_id = $1`, [
        user.userId,
      ]);
      expect(audit.rows[0]!.changes).toEqual({ sessions_revoked: 1 });
    });

    it('refuses a wrong current password with 401 invalid_credentials and a weak new one with 400, changing nothing', async () => {
      const user = await signupUser(base);
      const other = await signinSession(base, user);
      const wrong = await http(base, 'POST', '/v1/auth/password', {
        token: user.accessToken,
        json: { current_password: 'not the password at all', new_password: NEW_PASSWORD },
      });
      expect(wrong.status).toBe(401);
      expect(wrong.json.code).toBe('invalid_credentials');
      const weak = await http(base, 'POST', '/v1/auth/password', {
        token: user.accessToken,
        json: { current_password: user.password, new_password: 'password' },
      });
      expect(weak.status).toBe(400);
      expect(weak.json.code).toBe('validation_failed');
      expect(weak.json.errors[0].path).toBe('new_password');
      expect((await me(other)).status).toBe(200);
      expect((await signin(user.email, user.password)).status).toBe(200);
      expect((await http(base, 'POST', '/v1/auth/password', { json: { current_password: 'x', new_password: NEW_PASSWORD } })).status).toBe(
        401,
      );
    });
  });

  describe('POST /v1/auth/email', () => {
    it('moves the account once the new address confirms, tells the old one, and frees the old address', async () => {
      const user = await signupUser(base);
      const target = uniqueEmail('moved');
      const asked = await http(base, 'POST', '/v1/auth/email', {
        token: user.accessToken,
        json: { new_email: target, password: user.password },
      });
      expect(asked.status, asked.text).toBe(202);
      const token = await tokenFromOutbox(app.dataDir, target, 'Confirm your new email address');
      // nothing changes until the link is followed
      expect((await me(user)).json.user.email).toBe(user.email);
      expect((await http(base, 'POST', '/v1/auth/verify-email', { json: { token } })).status).toBe(204);
      expect((await me(user)).json.user).toMatchObject({ email: target, email_verified: true });
      expect(await waitForMail(app.dataDir, user.email, 'The email address of your account was changed')).toContain('If this was not you');
      expect((await signin(target, user.password)).status).toBe(200);
      expect((await signin(user.email, user.password)).status).toBe(401);
      expect((await http(base, 'POST', '/v1/auth/signup', { json: { email: user.email, password: STRONG_PASSWORD } })).status).toBe(201);
      // the link is one-time
      expect((await http(base, 'POST', '/v1/auth/verify-email', { json: { token } })).json.code).toBe('invalid_grant');
    });

    it('answers 202 for a taken address too, mails that address instead, and changes nothing', async () => {
      const user = await signupUser(base);
      const owner = await signupUser(base);
      const asked = await http(base, 'POST', '/v1/auth/email', {
        token: user.accessToken,
        json: { new_email: owner.email, password: user.password },
      });
      const fresh = await http(base, 'POST', '/v1/auth/email', {
        token: user.accessToken,
        json: { new_email: uniqueEmail('free'), password: user.password },
      });
      expect(asked.status).toBe(202);
      expect(asked.json).toEqual(fresh.json);
      const mail = await waitForMail(app.dataDir, owner.email, 'Your email address is already in use');
      expect(mail).not.toMatch(/token=/);
      expect((await me(user)).json.user.email).toBe(user.email);
      expect((await me(owner)).json.user.email).toBe(owner.email);
    });

    it('needs the password: 401 invalid_credentials without sending anything', async () => {
      const user = await signupUser(base);
      const target = uniqueEmail('never');
      const wrong = await http(base, 'POST', '/v1/auth/email', {
        token: user.accessToken,
        json: { new_email: target, password: 'wrong password 12345' },
      });
      expect(wrong.status).toBe(401);
      expect(wrong.json.code).toBe('invalid_credentials');
      const invalid = await http(base, 'POST', '/v1/auth/email', {
        token: user.accessToken,
        json: { new_email: 'not-an-email', password: user.password },
      });
      expect(invalid.status).toBe(400);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(mailsTo(app.dataDir, target)).toEqual([]);
    });
  });

  describe('POST /v1/auth/verify-email/resend', () => {
    it('sends a fresh link while unverified (the old one stops working) and nothing once verified', async () => {
      const user = await signupUser(base);
      const first = await tokenFromOutbox(app.dataDir, user.email, 'Verify your email address');
      const resent = await http(base, 'POST', '/v1/auth/verify-email/resend', { token: user.accessToken });
      expect(resent.status).toBe(202);
      await waitFor(() => mailsTo(app.dataDir, user.email).filter((mail) => mail.includes('Verify your email address')).length === 2, 5000);
      const second = await tokenFromOutbox(app.dataDir, user.email, 'Verify your email address');
      expect(second).not.toBe(first);
      expect((await http(base, 'POST', '/v1/auth/verify-email', { json: { token: first } })).status).toBe(401);
      expect((await http(base, 'POST', '/v1/auth/verify-email', { json: { token: second } })).status).toBe(204);
      const again = await http(base, 'POST', '/v1/auth/verify-email/resend', { token: user.accessToken });
      expect(again.status).toBe(202);
      expect(again.json).toEqual(resent.json);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(mailsTo(app.dataDir, user.email).filter((mail) => mail.includes('Verify your email address'))).toHaveLength(2);
    });
  });

  describe('DELETE /v1/auth/me', () => {
    it('deletes the account and its personal data with the password, ends every session, audits the id only and frees the email', async () => {
      const user = await signupUser(base);
      const other = await signinSession(base, user);
      expect((await http(base, 'DELETE', '/v1/auth/me', { token: user.accessToken, json: {} })).status).toBe(400);
      const wrong = await http(base, 'DELETE', '/v1/auth/me', { token: user.accessToken, json: { password: 'wrong password 12345' } });
      expect(wrong.status).toBe(401);
      expect(wrong.json.code).toBe('invalid_credentials');
      const deleted = await http(base, 'DELETE', '/v1/auth/me', { token: user.accessToken, json: { password: user.password } });
      expect(deleted.status, deleted.text).toBe(204);
      expect((await me(user)).status).toBe(401);
      expect((await me(other)).status).toBe(401);
      expect((await http(base, 'POST', '/v1/auth/refresh', { json: { refresh_token: other.refreshToken } })).status).toBe(401);
      for (const table of [
        'users WHERE id',
        'sessions WHERE user_id',
        'password_credentials WHERE user_id',
        'email_tokens WHERE user_id',
      ]) {
        expect((await db.query(`SELECT count(*)::int AS n FROM ${table} = $1`, [user.userId])).rows[0]!.n, table).toBe(0);
      }
      const audit = await db.query(`SELECT actor_id, changes FROM audit_records WHERE action = 'user.self_deleted' AND target_id = $1`, [
        user.userId,
      ]);
      expect(audit.rows).toHaveLength(1);
      expect(JSON.stringify(audit.rows[0])).not.toContain(user.email);
      expect(await waitForMail(app.dataDir, user.email, 'Your account was deleted')).toContain('If this was not you');
      expect((await http(base, 'POST', '/v1/auth/signup', { json: { email: user.email, password: STRONG_PASSWORD } })).status).toBe(201);
    });

    it('takes a fresh TOTP code from an account without a password', async () => {
      const user = await signupUser(base);
      const enroll = await http(base, 'POST', '/v1/auth/mfa/totp/enroll', { token: user.accessToken });
      expect(enroll.status, enroll.text).toBe(200);
      const step = await settledStep();
      const confirmed = await http(base, 'POST', '/v1/auth/mfa/totp/confirm', {
        token: user.accessToken,
        json: { code: totpCode(enroll.json.secret, step) },
      });
      expect(confirmed.status, confirmed.text).toBe(200);
      await db.query(`DELETE FROM password_credentials WHERE user_id = $1`, [user.userId]);
      const withPassword = await http(base, 'DELETE', '/v1/auth/me', { token: user.accessToken, json: { password: user.password } });
      expect(withPassword.status).toBe(400);
      expect(withPassword.json.errors[0].path).toBe('code');
      const wrong = await http(base, 'DELETE', '/v1/auth/me', {
        token: user.accessToken,
        json: { code: totpCode(enroll.json.secret, step - 5) },
      });
      expect(wrong.status).toBe(401);
      expect(wrong.json.code).toBe('mfa_invalid');
      const deleted = await http(base, 'DELETE', '/v1/auth/me', {
        token: user.accessToken,
        json: { code: totpCode(enroll.json.secret, step + 1) },
      });
      expect(deleted.status, deleted.text).toBe(204);
      expect((await db.query(`SELECT count(*)::int AS n FROM users WHERE id = $1`, [user.userId])).rows[0]!.n).toBe(0);
    });

    it('deletes a Google-only account only after a recent authentication, else 403 reauth_required', async () => {
      // A Google-only account: a Google identity and no password, no TOTP.
      const user = await signupUser(base);
      await db.query(
        `INSERT INTO external_identities (id, user_id, issuer, subject, email, email_verified) VALUES (gen_random_uuid()::text, $1, 'https://accounts.google.com', $2, $3, true)`,
        [user.userId, `sub-del-${user.userId}`, user.email],
      );
      await db.query(`DELETE FROM password_credentials WHERE user_id = $1`, [user.userId]);
      // The session's last authentication is older than SELF_REAUTH_MAX_AGE (300 s).
      await db.query(`UPDATE sessions SET authenticated_at = now() - interval '10 minutes' WHERE user_id = $1`, [user.userId]);
      const stale = await http(base, 'DELETE', '/v1/auth/me', { token: user.accessToken, json: {} });
      expect(stale.status, stale.text).toBe(403);
      expect(stale.json.code).toBe('reauth_required');
      expect((await db.query(`SELECT count(*)::int AS n FROM users WHERE id = $1`, [user.userId])).rows[0]!.n).toBe(1);
      const denied = await db.query(`SELECT changes FROM audit_records WHERE action = 'auth.step_up_denied' AND actor_id = $1`, [
        user.userId,
      ]);
      expect(denied.rows.map((row) => row.changes)).toEqual([{ required: 'recent_authentication', action: 'account delete' }]);

      // A fresh Google sign-in starts a session authenticated now: the same request then succeeds.
      await db.query(`UPDATE sessions SET authenticated_at = now() WHERE user_id = $1`, [user.userId]);
      const deleted = await http(base, 'DELETE', '/v1/auth/me', { token: user.accessToken, json: {} });
      expect(deleted.status, deleted.text).toBe(204);
      expect((await db.query(`SELECT count(*)::int AS n FROM users WHERE id = $1`, [user.userId])).rows[0]!.n).toBe(0);
      const audit = await db.query(`SELECT changes FROM audit_records WHERE action = 'user.self_deleted' AND target_id = $1`, [
        user.userId,
      ]);
      expect(audit.rows.map((row) => row.changes)).toEqual([{ proven_by: 'recent_authentication', sessions_revoked: 1 }]);
    });

    it('refuses to delete the last platform admin with 409', async () => {
      const root = await signinAdmin(base);
      const result = await http(base, 'DELETE', '/v1/auth/me', { token: root, json: { password: ADMIN_PASSWORD } });
      expect(result.status).toBe(409);
      expect(result.json.code).toBe('conflict');
      expect((await http(base, 'GET', '/v1/auth/me', { token: root })).status).toBe(200);
    });
  });

  describe('own Google identities', () => {
    async function linkIdentity(userId: string, subject: string): Promise<string> {
      const rows = await db.query<{ id: string }>(
        `INSERT INTO external_identities (id, user_id, issuer, subject, email, email_verified) VALUES (gen_random_uuid()::text, $1, 'https://accounts.google.com', $2, 'g@example.com', true) RETURNING id`,
        [userId, subject],
      );
      return rows.rows[0]!.id;
    }

    it('lists and unlinks one’s own identities, audited and mailed; another user’s is 404', async () => {
      const user = await signupUser(base);
      const stranger = await signupUser(base);
      const id = await linkIdentity(user.userId, `sub-${user.userId}`);
      const foreign = await linkIdentity(stranger.userId, `sub-${stranger.userId}`);
      const listed = await http(base, 'GET', '/v1/auth/identities', { token: user.accessToken });
      expect(listed.status).toBe(200);
      expect(listed.json).toEqual({
        items: [expect.objectContaining({ id, provider: 'google', issuer: 'https://accounts.google.com', subject: `sub-${user.userId}` })],
        next_cursor: null,
      });
      expect((await http(base, 'DELETE', `/v1/auth/identities/${foreign}`, { token: user.accessToken })).status).toBe(404);
      expect((await http(base, 'DELETE', `/v1/auth/identities/${id}`, { token: user.accessToken })).status).toBe(204);
      expect((await http(base, 'GET', '/v1/auth/identities', { token: user.accessToken })).json.items).toEqual([]);
      expect(await waitForMail(app.dataDir, user.email, 'Google sign-in was removed')).toContain('If this was not you');
      const audit = await db.query(`SELECT count(*)::int AS n FROM audit_records WHERE action = 'identity.unlinked' AND target_id = $1`, [
        user.userId,
      ]);
      expect(audit.rows[0]!.n).toBe(1);
    });

    it('refuses to unlink the last way to sign in with 409 conflict', async () => {
      const user = await signupUser(base);
      const id = await linkIdentity(user.userId, `only-${user.userId}`);
      await db.query(`DELETE FROM password_credentials WHERE user_id = $1`, [user.userId]);
      const result = await http(base, 'DELETE', `/v1/auth/identities/${id}`, { token: user.accessToken });
      expect(result.status).toBe(409);
      expect(result.json.code).toBe('conflict');
    });
  });
});
