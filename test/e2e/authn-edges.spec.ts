import net from 'node:net';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp } from '../support/app';
import { signupUser } from '../support/auth-flows';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { http, STRONG_PASSWORD, uniqueEmail } from '../support/http';
import { freePort, waitFor } from '../support/process';
import { servicesAvailable } from '../support/services';

const available = servicesAvailable({ postgres: true });

describe.skipIf(!available)('mail, client addresses and per-IP limits', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('sends mail over SMTP_URL after commit, with the one-time token in the text', async () => {
    const received: Array<{ to: string; body: string }> = [];
    const smtp = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      onData(stream, session, callback) {
        let body = '';
        stream.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
        stream.on('end', () => {
          received.push({ to: session.envelope.rcptTo.map((rcpt) => rcpt.address).join(','), body });
          callback();
        });
      },
    });
    const port = await freePort();
    await new Promise<void>((resolve) => smtp.listen(port, '127.0.0.1', resolve));
    const app = await bootApp({ DATABASE_URL: db.url, SMTP_URL: `smtp://127.0.0.1:${port}`, MAIL_FROM: 'Gatehouse <auth@example.com>' });
    try {
      const user = await signupUser(app.url);
      await waitFor(() => received.some((mail) => mail.to === user.email), 5000);
      const mail = received.find((mail) => mail.to === user.email)!;
      expect(mail.body).toMatch(/From: Gatehouse <auth@example\.com>/);
      const text = mail.body.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
      const token = /token=([A-Za-z0-9_-]+)/.exec(text)?.[1];
      expect(token).toBeDefined();
      expect((await http(app.url, 'POST', '/v1/auth/verify-email', { json: { token } })).status).toBe(204);
    } finally {
      await app.close();
      await new Promise<void>((resolve) => smtp.close(resolve));
    }
  });

  it('never fails or blocks a request when the mail server is down', async () => {
    const closed = await freePort();
    const app = await bootApp({ DATABASE_URL: db.url, SMTP_URL: `smtp://127.0.0.1:${closed}` });
    try {
      const signup = await http(app.url, 'POST', '/v1/auth/signup', { json: { email: uniqueEmail('nomail'), password: STRONG_PASSWORD } });
      expect(signup.status).toBe(201);
      const forgot = await http(app.url, 'POST', '/v1/auth/forgot', { json: { email: signup.json.user.email } });
      expect(forgot.status).toBe(202);
    } finally {
      await app.close();
    }
  });

  it('believes X-Forwarded-For only from TRUST_PROXY addresses', async () => {
    const trusting = await bootApp({ DATABASE_URL: db.url, TRUST_PROXY: '127.0.0.1' });
    const sceptical = await bootApp({ DATABASE_URL: db.url });
    try {
      const viaProxy = await http(trusting.url, 'POST', '/v1/auth/signup', {
        json: { email: uniqueEmail('xff'), password: STRONG_PASSWORD },
        headers: { 'x-forwarded-for': '203.0.113.7' },
      });
      const direct = await http(sceptical.url, 'POST', '/v1/auth/signup', {
        json: { email: uniqueEmail('xff'), password: STRONG_PASSWORD },
        headers: { 'x-forwarded-for': '203.0.113.8' },
      });
      const ips = await db.query<{ id: string; ip: string }>(`SELECT id, ip FROM sessions WHERE id = ANY($1)`, [
        [viaProxy.json.session_id, direct.json.session_id],
      ]);
      const byId = new Map(ips.rows.map((row) => [row.id, row.ip]));
      expect(byId.get(viaProxy.json.session_id)).toBe('203.0.113.7');
      expect(byId.get(direct.json.session_id)).toBe('127.0.0.1');
    } finally {
      await trusting.close();
      await sceptical.close();
    }
  });

  it('limits requests per client IP on the abuse-protected endpoints with 429 and Retry-After', async () => {
    const app = await bootApp({ DATABASE_URL: db.url, AUTH_IP_LIMIT: '5', AUTH_WINDOW: '600', TRUST_PROXY: '127.0.0.1' });
    try {
      const from = (ip: string) => ({ 'x-forwarded-for': ip });
      const statuses: number[] = [];
      for (let i = 0; i < 6; i += 1) {
        const result = await http(app.url, 'POST', '/v1/auth/forgot', {
          json: { email: uniqueEmail('ip') },
          headers: from('198.51.100.1'),
        });
        statuses.push(result.status);
        if (result.status === 429) {
          expect(result.json.code).toBe('rate_limited');
          expect(Number(result.headers.get('retry-after'))).toBeGreaterThan(500);
        }
      }
      expect(statuses).toEqual([202, 202, 202, 202, 202, 429]);
      // shared by every protected endpoint, and per address
      expect(
        (
          await http(app.url, 'POST', '/v1/auth/signin', {
            json: { email: uniqueEmail('ip'), password: 'x'.repeat(15) },
            headers: from('198.51.100.1'),
          })
        ).status,
      ).toBe(429);
      expect(
        (await http(app.url, 'POST', '/v1/auth/forgot', { json: { email: uniqueEmail('ip') }, headers: from('198.51.100.2') })).status,
      ).toBe(202);
    } finally {
      await app.close();
    }
  });

  it('closes cleanly when asked (no listener left behind)', async () => {
    const app = await bootApp({ DATABASE_URL: db.url });
    const port = Number(new URL(app.url).port);
    await app.close();
    const refused = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(false);
      });
      socket.on('error', () => resolve(true));
    });
    expect(refused).toBe(true);
  });
});
