import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, type TestApp } from '../support/app';
import { signupUser, waitForMail, type SignedUp } from '../support/auth-flows';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { http } from '../support/http';
import { freePort } from '../support/process';
import { NATS_URL, servicesAvailable } from '../support/services';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = fs.existsSync(CHROMIUM);
if (!hasChromium) console.warn(`skipping suite: no ${CHROMIUM} (apt-get install chromium)`);
const available = servicesAvailable({ postgres: true, nats: true }) && (hasChromium || process.env.REQUIRE_SERVICES === '1');
/** Screenshots of every page state, for a person to look at (gitignored). */
const SHOTS = path.resolve(__dirname, '..', '..', 'test-output', 'account-pages');
const NEW_PASSWORD = 'lantern orchard quietly ninety';

/** The first link in a mail's text part that points at `page` (quoted-printable already undone). */
function linkIn(mail: string, page: string): string {
  const match = new RegExp(`https?://[^\\s"<>]+${page}\\?token=[A-Za-z0-9_-]+`).exec(mail);
  if (match === null) throw new Error(`no ${page} link in the mail`);
  return match[0];
}

describe.skipIf(!available)('account pages in a real browser (Debian chromium via playwright-core)', () => {
  let db: TestDatabase;
  let app: TestApp;
  let browser: Browser;
  let page: Page;
  let problems: string[];

  beforeAll(async () => {
    fs.mkdirSync(SHOTS, { recursive: true });
    db = await createTestDatabase();
    const port = await freePort();
    // the links in the mails must lead to this very server
    app = await bootApp({
      DATABASE_URL: db.url,
      NATS_URL,
      AUTH_IP_LIMIT: '100000',
      PORT: String(port),
      PUBLIC_URL: `http://127.0.0.1:${port}`,
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await db?.drop();
  });
  const newPage = async (): Promise<Page> => {
    page = await browser.newPage();
    problems = [];
    // a CSP violation or script error shows up as a console error or page error
    page.on('console', (message) => {
      // Chromium logs every non-2xx fetch as "Failed to load resource"; the refusals are the point here
      if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) problems.push(message.text());
    });
    page.on('pageerror', (error) => problems.push(error.message));
    return page;
  };
  afterEach(async () => {
    await page?.close();
  });

  const shot = (name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  const outcome = async (text: string) => {
    const status = page.getByRole('status');
    await status.filter({ hasText: text }).waitFor({ timeout: 10_000 });
    return status.textContent();
  };
  const me = async (user: SignedUp) => (await http(app.url, 'GET', '/v1/auth/me', { token: user.accessToken })).json;

  it('verify: the link from the sign-up mail shows a page, and its button verifies the account; the used link says so', async () => {
    const user = await signupUser(app.url);
    const link = linkIn(await waitForMail(app.dataDir, user.email, 'Verify your email address'), '/account/verify-email');
    await newPage();
    const response = await page.goto(link);
    expect(response?.status()).toBe(200);
    await expect(page.title()).resolves.toBe('Verify your email address – Gatehouse');
    // the token left the address bar, and opening the page changed nothing
    expect(page.url()).toBe(`${app.gatehouse.config.PUBLIC_URL}/account/verify-email`);
    expect((await me(user)).user.email_verified).toBe(false);
    await shot('verify-1-opened');

    await page.getByRole('button', { name: 'Verify my email address' }).click();
    expect(await outcome('Your email address is verified')).toContain('You can close this page');
    await shot('verify-2-verified');
    expect((await me(user)).user.email_verified).toBe(true);

    await newPage();
    await page.goto(link);
    await page.getByRole('button', { name: 'Verify my email address' }).click();
    expect(await outcome('has expired or has already been used')).toContain('nothing was changed');
    await expect(page.getByRole('button').count()).resolves.toBe(0);
    await shot('verify-3-link-used');
    expect(problems).toEqual([]);
  });

  it('reset: keyboard only, mismatch and weak passwords explained, then the new password signs in and the old sessions are gone', async () => {
    const user = await signupUser(app.url);
    const other = await http(app.url, 'POST', '/v1/auth/signin', { json: { email: user.email, password: user.password } });
    expect((await http(app.url, 'POST', '/v1/auth/forgot', { json: { email: user.email } })).status).toBe(202);
    const link = linkIn(await waitForMail(app.dataDir, user.email, 'Reset your password'), '/account/reset-password');
    await newPage();
    await page.goto(link);
    await shot('reset-1-opened');
    await expect(page.getByLabel('New password', { exact: true }).getAttribute('autocomplete')).resolves.toBe('new-password');

    // keyboard only: Tab into the first field, type, Tab, type, Enter submits
    await page.keyboard.press('Tab');
    await page.keyboard.type(NEW_PASSWORD);
    await page.keyboard.press('Tab');
    await page.keyboard.type(`${NEW_PASSWORD}!`);
    await page.keyboard.press('Enter');
    await outcome('The two passwords are not the same');
    await shot('reset-2-mismatch');

    await page.getByLabel('New password', { exact: true }).fill('password');
    await page.getByLabel('Repeat the new password').fill('password');
    await page.getByLabel('Repeat the new password').press('Enter');
    expect(await outcome('The password must be at least 15 characters.')).toMatch(/Choose another one\.$/);
    await shot('reset-3-refused-short');
    await page.getByLabel('New password', { exact: true }).fill('password123456789');
    await page.getByLabel('Repeat the new password').fill('password123456789');
    await page.getByRole('button', { name: 'Set my new password' }).click();
    expect(await outcome('The password is too close to a commonly used password')).toMatch(/Choose another one\.$/);
    await shot('reset-3-refused-common');
    expect((await http(app.url, 'POST', '/v1/auth/signin', { json: { email: user.email, password: user.password } })).status).toBe(200);

    await page.getByLabel('New password', { exact: true }).fill(NEW_PASSWORD);
    await page.getByLabel('Repeat the new password').fill(NEW_PASSWORD);
    await page.getByRole('button', { name: 'Set my new password' }).click();
    expect(await outcome('Your password has been changed')).toContain('Sign in with your new password');
    await shot('reset-4-changed');

    expect((await http(app.url, 'POST', '/v1/auth/signin', { json: { email: user.email, password: NEW_PASSWORD } })).status).toBe(200);
    expect((await http(app.url, 'POST', '/v1/auth/signin', { json: { email: user.email, password: user.password } })).status).toBe(401);
    expect((await http(app.url, 'GET', '/v1/auth/me', { token: user.accessToken })).status).toBe(401);
    expect((await http(app.url, 'GET', '/v1/auth/me', { token: other.json.access_token })).status).toBe(401);
    expect((await http(app.url, 'POST', '/v1/auth/refresh', { json: { refresh_token: user.refreshToken } })).status).toBe(401);

    await newPage();
    await page.goto(link);
    await page.getByLabel('New password', { exact: true }).fill(`${NEW_PASSWORD} again`);
    await page.getByLabel('Repeat the new password').fill(`${NEW_PASSWORD} again`);
    await page.getByRole('button', { name: 'Set my new password' }).click();
    expect(await outcome('has expired or has already been used')).toContain('your password was not changed');
    await shot('reset-5-link-used');
    expect(problems).toEqual([]);
  });

  it('an expired reset link and a link without its token say so in words', async () => {
    const user = await signupUser(app.url);
    await http(app.url, 'POST', '/v1/auth/forgot', { json: { email: user.email } });
    const link = linkIn(await waitForMail(app.dataDir, user.email, 'Reset your password'), '/account/reset-password');
    await db.query(`UPDATE email_tokens SET expires_at = now() - interval '1 minute' WHERE user_id = $1 AND purpose = 'reset_password'`, [
      user.userId,
    ]);
    await newPage();
    await page.goto(link);
    await page.getByLabel('New password', { exact: true }).fill(NEW_PASSWORD);
    await page.getByLabel('Repeat the new password').fill(NEW_PASSWORD);
    await page.getByRole('button', { name: 'Set my new password' }).click();
    await outcome('has expired or has already been used');
    await shot('reset-6-link-expired');
    expect((await http(app.url, 'POST', '/v1/auth/signin', { json: { email: user.email, password: user.password } })).status).toBe(200);

    await newPage();
    await page.goto(`${app.url}/account/verify-email`);
    expect(await outcome('This link is incomplete')).toContain('carries no token');
    await expect(page.getByRole('button').count()).resolves.toBe(0);
    await shot('verify-4-incomplete-link');
    expect(problems).toEqual([]);
  });

  it('email change: the confirmation link in the mail to the new address moves the account', async () => {
    const user = await signupUser(app.url);
    const target = `moved-${user.email}`;
    const asked = await http(app.url, 'POST', '/v1/auth/email', {
      token: user.accessToken,
      json: { new_email: target, password: user.password },
    });
    expect(asked.status).toBe(202);
    const link = linkIn(await waitForMail(app.dataDir, target, 'Confirm your new email address'), '/account/verify-email');
    await newPage();
    await page.goto(link);
    await page.getByRole('button', { name: 'Verify my email address' }).click();
    await outcome('Your email address is verified');
    await shot('email-change-confirmed');
    expect((await me(user)).user).toMatchObject({ email: target, email_verified: true });
    expect(problems).toEqual([]);
  });
});
