import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/config';
import { bootApp, bootAppOnTestDatabase, type TestApp } from '../support/app';
import { signupUser, tokenFromOutbox, waitForMail } from '../support/auth-flows';
import { type TestDatabase } from '../support/database';
import { http, uniqueEmail } from '../support/http';
import { NATS_URL, servicesAvailable } from '../support/services';

const available = servicesAvailable({ postgres: true, nats: true });

function templatesDir(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-mail-templates-'));
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), content);
  return dir;
}

/** The decoded parts of a raw .eml (quoted-printable undone by mailsTo): text/plain and text/html. */
function parts(raw: string): { text: string; html: string } {
  const mail = raw.replace(/\r\n/g, '\n');
  const section = (type: string) => {
    const start = mail.indexOf(`Content-Type: ${type}`);
    if (start === -1) return '';
    const body = mail.indexOf('\n\n', start);
    const end = mail.indexOf('\n--', body);
    return mail.slice(body + 2, end === -1 ? undefined : end);
  };
  return { text: section('text/plain'), html: section('text/html') };
}

describe.skipIf(!available)('mails from templates and the account pages (CONTRACT §12)', () => {
  let db: TestDatabase;
  let app: TestApp;

  let close: () => Promise<void>;

  beforeAll(async () => {
    ({ db, app, close } = await bootAppOnTestDatabase());
  });
  afterAll(() => close?.());

  it('sends the built-in mails as text and HTML with the product, the action, the expiry and "if this was not you"', async () => {
    const user = await signupUser(app.url);
    const mail = await waitForMail(app.dataDir, user.email, 'Verify your email address');
    expect(mail).toMatch(/Content-Type: multipart\/alternative/);
    const { text, html } = parts(mail);
    const token = await tokenFromOutbox(app.dataDir, user.email, 'Verify your email address');
    const link = `${app.gatehouse.config.PUBLIC_URL}/account/verify-email?token=${token}`;
    expect(text).toContain('Welcome to Gatehouse.');
    expect(text).toContain(link);
    expect(text).toContain('valid for 24 hours');
    expect(text).toContain('If you did not create an account');
    expect(html).toContain(`href="${link}"`);
    expect(html).toContain('Verify my email address');
    expect(html).toContain('valid for 24 hours');
    expect(html).not.toMatch(/<img|<link|src=/);

    expect((await http(app.url, 'POST', '/v1/auth/forgot', { json: { email: user.email } })).status).toBe(202);
    const reset = parts(await waitForMail(app.dataDir, user.email, 'Reset your password'));
    expect(reset.text).toMatch(/\/account\/reset-password\?token=[A-Za-z0-9_-]+/);
    expect(reset.text).toContain('valid for 30 minutes');
    expect(reset.text).toContain('If this was not you');

    const changed = await http(app.url, 'POST', '/v1/auth/password', {
      token: user.accessToken,
      json: { current_password: user.password, new_password: 'another long passphrase for the test' },
    });
    expect(changed.status).toBe(204);
    const notice = parts(await waitForMail(app.dataDir, user.email, 'Your password was changed'));
    expect(notice.text).toContain('If this was not you');
    expect(notice.html).toContain('Gatehouse');
  });

  it('serves the account pages as static, strict HTML: GET changes nothing and never echoes the token', async () => {
    const user = await signupUser(app.url);
    const token = await tokenFromOutbox(app.dataDir, user.email, 'Verify your email address');
    for (const page of ['/account/verify-email', '/account/reset-password']) {
      const result = await http(app.url, 'GET', `${page}?token=${token}`);
      expect(result.status).toBe(200);
      expect(result.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(result.headers.get('referrer-policy')).toBe('no-referrer');
      expect(result.headers.get('cache-control')).toBe('no-store');
      const csp = result.headers.get('content-security-policy')!;
      expect(csp).toContain("default-src 'none'");
      expect(csp).toMatch(/script-src 'sha256-[A-Za-z0-9+/=]+'(;|$)/);
      expect(csp).toContain("connect-src 'self'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).not.toContain('unsafe-inline');
      expect(result.text).not.toContain(token);
      expect(result.text).not.toMatch(/https?:\/\//);
      expect(result.text).toMatch(/<label for="|<button id="submit" type="submit">/);
    }
    expect((await http(app.url, 'GET', '/v1/auth/me', { token: user.accessToken })).json.user.email_verified).toBe(false);
    expect((await http(app.url, 'POST', '/v1/auth/verify-email', { json: { token } })).status).toBe(204);
  });

  it('uses the operator’s templates and link URLs, part by part', async () => {
    const dir = templatesDir({
      'verify_email.subject.txt': 'Bienvenue chez {{product_name}}',
      'verify_email.txt': 'Confirmez {{email}} : {{action_url}} (valable {{expires_in}}). Pas vous ? Ignorez ce message.\n',
      'password_changed.html': '<p>Mot de passe changé pour {{email}}.</p>',
      '.keep': '',
    });
    const custom = await bootApp({
      DATABASE_URL: db.url,
      NATS_URL,
      AUTH_IP_LIMIT: '100000',
      MAIL_TEMPLATES_DIR: dir,
      EMAIL_VERIFY_URL: 'https://app.example.com/welcome?t={token}&lang=fr',
      PASSWORD_RESET_URL: 'https://app.example.com/reset/{token}',
    });
    try {
      const email = uniqueEmail('custom');
      const user = await signupUser(custom.url, email);
      const mail = await waitForMail(custom.dataDir, email, 'Bienvenue chez Gatehouse');
      const { text, html } = parts(mail);
      expect(text).toMatch(
        new RegExp(
          `^Confirmez ${email.replace(/[.+]/g, '\\$&')} : https://app\\.example\\.com/welcome\\?t=[A-Za-z0-9_-]+&lang=fr \\(valable 24 hours\\)`,
        ),
      );
      // the HTML part was not overridden: the built-in one, with the operator's link, escaped
      expect(html).toMatch(/href="https:\/\/app\.example\.com\/welcome\?t=[A-Za-z0-9_-]+&amp;lang=fr"/);
      expect((await http(custom.url, 'POST', '/v1/auth/forgot', { json: { email } })).status).toBe(202);
      expect(await waitForMail(custom.dataDir, email, 'Reset your password')).toMatch(/https:\/\/app\.example\.com\/reset\/[A-Za-z0-9_-]+/);
      await http(custom.url, 'POST', '/v1/auth/password', {
        token: user.accessToken,
        json: { current_password: user.password, new_password: 'another long passphrase for the test' },
      });
      const notice = parts(await waitForMail(custom.dataDir, email, 'Your password was changed'));
      expect(notice.html).toContain(`<p>Mot de passe chang`);
      expect(notice.text).toContain('If this was not you');
    } finally {
      await custom.close();
    }
  });

  it('refuses to start with a template that uses an unknown placeholder or file name, naming MAIL_TEMPLATES_DIR', async () => {
    const broken: Array<Record<string, string>> = [{ 'verify_email.txt': 'Hello {{first_name}}' }, { 'verify_email.md': 'Hello' }];
    for (const files of broken) {
      const error = await bootApp({ DATABASE_URL: db.url, MAIL_TEMPLATES_DIR: templatesDir(files) }).then(
        async (started) => {
          await started.close();
          return undefined;
        },
        (caught: unknown) => caught,
      );
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toMatch(/^config: MAIL_TEMPLATES_DIR: /);
    }
  });
});
