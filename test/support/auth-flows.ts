import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { http, STRONG_PASSWORD, uniqueEmail } from './http';

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
