import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, type TestApp } from '../support/app';
import { signupUser } from '../support/auth-flows';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { STRONG_PASSWORD, http } from '../support/http';
import { servicesAvailable } from '../support/services';

const available = servicesAvailable({ postgres: true });

/** CONTRACT §4 wave 2: the hasher's bound answers 503 at once instead of queueing every sign-in. */
describe.skipIf(!available)('password hasher overload', () => {
  let db: TestDatabase;
  let app: TestApp;

  beforeAll(async () => {
    db = await createTestDatabase();
    app = await bootApp({
      DATABASE_URL: db.url,
      MASTER_KEY: Buffer.alloc(32, 31).toString('base64'),
      AUTH_IP_LIMIT: '100000',
      AUTH_ACCOUNT_FAILURE_LIMIT: '1000',
      PASSWORD_HASH_CONCURRENCY: '1',
      PASSWORD_HASH_QUEUE: '2',
    });
  });
  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });

  it('beyond PASSWORD_HASH_CONCURRENCY + PASSWORD_HASH_QUEUE, sign-ins are 503 unavailable with Retry-After, quickly; the rest succeed', async () => {
    const user = await signupUser(app.url);
    const results = await Promise.all(
      Array.from({ length: 40 }, async () => {
        const started = Date.now();
        const result = await http(app.url, 'POST', '/v1/auth/signin', { json: { email: user.email, password: STRONG_PASSWORD } });
        return { result, ms: Date.now() - started };
      }),
    );
    const ok = results.filter(({ result }) => result.status === 200);
    const overloaded = results.filter(({ result }) => result.status === 503);
    expect(ok.length + overloaded.length).toBe(40);
    expect(ok.length).toBeGreaterThanOrEqual(3);
    expect(overloaded.length).toBeGreaterThan(0);
    for (const { result } of overloaded) {
      expect(result.json.code).toBe('unavailable');
      expect(result.headers.get('retry-after')).toBe('1');
    }
    const slowest = Math.max(...overloaded.map(({ ms }) => ms));
    console.log(`hash overload: ${ok.length} admitted, ${overloaded.length} 503, slowest 503 in ${slowest} ms`);
    // a refusal waits at most the 1 s queue bound (plus a loaded machine's slack), never the whole queue
    expect(slowest).toBeLessThan(4000);
  });
});
