import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { http, STRONG_PASSWORD, uniqueEmail, type HttpResult } from './http';
import { settledStep, totpCode } from './totp-codes';

/** The bootstrap admin most suites start Gatehouse with (BOOTSTRAP_ADMIN_* below). */
export const ADMIN_EMAIL = 'root@example.com';
export const ADMIN_PASSWORD = 'bootstrap admin password 123';

/** BOOTSTRAP_ADMIN_EMAIL / BOOTSTRAP_ADMIN_PASSWORD for bootApp/spawnGatehouse. */
export const bootstrapAdminEnv = (email = ADMIN_EMAIL, password = ADMIN_PASSWORD) => ({
  BOOTSTRAP_ADMIN_EMAIL: email,
  BOOTSTRAP_ADMIN_PASSWORD: password,
});

export interface SignedUp {
  email: string;
  password: string;
  userId: string;
  accessToken: string;
  refreshToken: string;
  sessionId: string;
}

export async function signupUser(base: string, email = uniqueEmail(), password = STRONG_PASSWORD): Promise<SignedUp> {
  const result = await http(base, 'POST', '/v1/auth/signup', { json: { email, password } });
  expect(result.status, result.text).toBe(201);
  return {
    email,
    password,
    userId: result.json.user.id,
    accessToken: result.json.access_token,
    refreshToken: result.json.refresh_token,
    sessionId: result.json.session_id,
  };
}

/** POST /v1/auth/signin with a password, as it comes back (no assertion). */
export const signin = (base: string, email: string, password: string, headers?: Record<string, string>): Promise<HttpResult> =>
  http(base, 'POST', '/v1/auth/signin', { json: { email, password }, headers });

/** Signs the bootstrap admin (or the given account without a second factor) in; returns the access token. */
export async function signinAdmin(base: string, email = ADMIN_EMAIL, password = ADMIN_PASSWORD): Promise<string> {
  const result = await signin(base, email, password);
  expect(result.status, result.text).toBe(200);
  return result.json.access_token as string;
}

export interface Session {
  accessToken: string;
  refreshToken: string;
  sessionId: string;
}

/** A further session of a user without a second factor (sign-in must answer 200 with tokens). */
export async function signinSession(base: string, user: { email: string; password: string }): Promise<Session> {
  const result = await signin(base, user.email, user.password);
  expect(result.status, result.text).toBe(200);
  return { accessToken: result.json.access_token, refreshToken: result.json.refresh_token, sessionId: result.json.session_id };
}

/**
 * Sign-in's password step for a user with a second factor: asserts 200 with `mfa_required` and
 * returns the body (`mfa_token`, `mfa_methods`).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function passwordStep(base: string, user: { email: string; password: string }): Promise<any> {
  const result = await signin(base, user.email, user.password);
  expect(result.status, result.text).toBe(200);
  expect(result.json.mfa_required, result.text).toBe(true);
  return result.json;
}

export interface TotpUser extends SignedUp {
  secret: string;
  recoveryCodes: string[];
  /** the last time step spent for the user (at first the confirmation's); the server refuses it and anything earlier */
  lastStep: number;
}

/**
 * A code for the next unspent time step. Codes are computed with node:crypto (RFC 6238),
 * independently of otplib; the ±1 step window allows three steps per user without waiting.
 */
export async function nextTotpCode(user: { secret: string; lastStep: number }): Promise<string> {
  const now = await settledStep();
  const step = Math.max(user.lastStep + 1, now - 1);
  if (step > now + 1) throw new Error('test spends more codes than the clock allows');
  user.lastStep = step;
  return totpCode(user.secret, step);
}

/** Enrols TOTP for `user` and confirms it with the code of the previous time step (asserts 200 on both). */
export async function enrolTotp(base: string, user: SignedUp): Promise<TotpUser> {
  const enroll = await http(base, 'POST', '/v1/auth/mfa/totp/enroll', { token: user.accessToken });
  expect(enroll.status, enroll.text).toBe(200);
  const totpUser: TotpUser = { ...user, secret: enroll.json.secret, recoveryCodes: [], lastStep: 0 };
  const confirm = await http(base, 'POST', '/v1/auth/mfa/totp/confirm', {
    token: user.accessToken,
    json: { code: await nextTotpCode(totpUser) },
  });
  expect(confirm.status, confirm.text).toBe(200);
  totpUser.recoveryCodes = confirm.json.recovery_codes;
  return totpUser;
}

/** Reads the newest .eml for `email` from DATA_DIR/outbox and returns the token=... value. */
export async function tokenFromOutbox(dataDir: string, email: string, subjectPart: string, after = 0): Promise<string> {
  const dir = path.join(dataDir, 'outbox');
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    if (fs.existsSync(dir)) {
      const files = fs
        .readdirSync(dir)
        .map((name) => path.join(dir, name))
        .filter((file) => fs.statSync(file).mtimeMs >= after)
        .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
      for (const file of files) {
        const text = fs
          .readFileSync(file, 'utf8')
          .replace(/=\r?\n/g, '')
          .replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
        if (text.toLowerCase().includes(email.toLowerCase()) && text.includes(subjectPart)) {
          const match = /token=([A-Za-z0-9_-]+)/.exec(text);
          if (match) return match[1]!;
        }
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no mail "${subjectPart}" for ${email}`);
}

/** The text of every .eml in DATA_DIR/outbox addressed to `email`, quoted-printable undone. */
export function mailsTo(dataDir: string, email: string): string[] {
  const dir = path.join(dataDir, 'outbox');
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .map((name) =>
      fs
        .readFileSync(path.join(dir, name), 'utf8')
        .replace(/=\r?\n/g, '')
        .replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))),
    )
    .filter((text) => text.toLowerCase().includes(`to: ${email.toLowerCase()}`));
}

/** Polls the outbox until a mail to `email` whose text contains `subjectPart` arrives (5 s). */
export async function waitForMail(dataDir: string, email: string, subjectPart: string): Promise<string> {
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    const found = mailsTo(dataDir, email).find((text) => text.includes(subjectPart));
    if (found !== undefined) return found;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no mail "${subjectPart}" for ${email}`);
}
