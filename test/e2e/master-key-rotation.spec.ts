import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_EMAIL, ADMIN_PASSWORD, signinAdmin } from '../support/admin-fixtures';
import { signupUser, type SignedUp } from '../support/auth-flows';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { http } from '../support/http';
import { spawnGatehouse, type GatehouseProcess } from '../support/process';
import { NATS_URL, servicesAvailable } from '../support/services';
import { settledStep, totpCode } from '../support/totp-codes';

const available = servicesAvailable({ postgres: true, nats: true });

const OLD_KEY = Buffer.alloc(32, 21).toString('base64');
const NEW_KEY = Buffer.alloc(32, 22).toString('base64');
const STRANGER_KEY = Buffer.alloc(32, 23).toString('base64');

/** The key id a v2 sealed value starts with (src/common/secret-box.ts: masterKeyId), computed independently here. */
const keyId = (base64: string) =>
  createHash('sha256').update('gatehouse:master-key-id').update(Buffer.from(base64, 'base64')).digest('base64url').slice(0, 8);

interface TotpUser extends SignedUp {
  secret: string;
  lastStep: number;
}

describe.skipIf(!available)('MASTER_KEY rotation on two running replicas (CONTRACT §13)', () => {
  let db: TestDatabase;
  let replicas: GatehouseProcess[] = [];
  let user: TotpUser;
  let chain: string;

  const baseEnv = (masterKey: string, previous?: string) => ({
    DATABASE_URL: db.url,
    NATS_URL,
    MASTER_KEY: masterKey,
    MASTER_KEY_PREVIOUS: previous,
    PUBLIC_URL: 'http://gatehouse.test',
    AUTH_IP_LIMIT: '100000',
    BOOTSTRAP_ADMIN_EMAIL: ADMIN_EMAIL,
    BOOTSTRAP_ADMIN_PASSWORD: ADMIN_PASSWORD,
    LOG_LEVEL: 'warn',
  });

  /** Replaces replica `index` by one started with the given keys (a rolling restart). */
  async function restart(index: number, masterKey: string, previous?: string): Promise<void> {
    await replicas[index]?.stop();
    replicas[index] = await spawnGatehouse(baseEnv(masterKey, previous), `mk-${index}`);
  }

  async function nextCode(): Promise<string> {
    let now = await settledStep();
    // the server accepts steps now-1..now+1, each once: past that, wait for the clock
    while (user.lastStep + 1 > now + 1) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      now = await settledStep();
    }
    const step = Math.max(user.lastStep + 1, now - 1);
    user.lastStep = step;
    return totpCode(user.secret, step);
  }

  /** Password + TOTP sign-in: opens the sealed TOTP secret and signs with the sealed private key. */
  async function totpSignin(base: string): Promise<void> {
    const first = await http(base, 'POST', '/v1/auth/signin', { json: { email: user.email, password: user.password } });
    expect(first.status, first.text).toBe(200);
    const second = await http(base, 'POST', '/v1/auth/signin/mfa', { json: { mfa_token: first.json.mfa_token, code: await nextCode() } });
    expect(second.status, second.text).toBe(200);
    expect((await http(base, 'GET', '/v1/auth/me', { token: second.json.access_token })).status).toBe(200);
  }

  /** One refresh of the running chain, on `base`; the replay record of the spent token is sealed. */
  async function refresh(base: string): Promise<void> {
    const result = await http(base, 'POST', '/v1/auth/refresh', { json: { refresh_token: chain } });
    expect(result.status, result.text).toBe(200);
    chain = result.json.refresh_token;
    expect((await http(base, 'GET', '/v1/auth/me', { token: result.json.access_token })).status).toBe(200);
  }

  async function sealedKeyIds(): Promise<string[]> {
    const rows = await db.query<{ sealed: string }>(`
      SELECT private_sealed AS sealed FROM signing_keys
      UNION ALL SELECT secret_sealed FROM totp_credentials
      UNION ALL SELECT successor_sealed FROM refresh_tokens WHERE successor_sealed IS NOT NULL
      UNION ALL SELECT sealed FROM oidc_states`);
    return rows.rows.map((row) => row.sealed.split('.').slice(0, 2).join('.'));
  }

  beforeAll(async () => {
    db = await createTestDatabase();
    replicas = await Promise.all([0, 1].map((index) => spawnGatehouse(baseEnv(OLD_KEY), `mk-${index}`)));
    const base = replicas[0]!.url;
    const signedUp = await signupUser(base);
    const enroll = await http(base, 'POST', '/v1/auth/mfa/totp/enroll', { token: signedUp.accessToken });
    expect(enroll.status, enroll.text).toBe(200);
    user = { ...signedUp, secret: enroll.json.secret, lastStep: 0 };
    const confirm = await http(base, 'POST', '/v1/auth/mfa/totp/confirm', {
      token: signedUp.accessToken,
      json: { code: await nextCode() },
    });
    expect(confirm.status, confirm.text).toBe(200);
    chain = signedUp.refreshToken;
    await refresh(replicas[1]!.url);
  });
  afterAll(async () => {
    await Promise.all(replicas.map((replica) => replica.stop()));
    await db?.drop();
  });

  it('moves everything to the new key while both replicas serve, then runs without the old key', async () => {
    expect(new Set(await sealedKeyIds())).toEqual(new Set([`v2.${keyId(OLD_KEY)}`]));

    // rolling restart onto the new key, the old one kept as previous: the other replica keeps serving
    await restart(0, NEW_KEY, OLD_KEY);
    await refresh(replicas[1]!.url);
    await restart(1, NEW_KEY, OLD_KEY);
    await totpSignin(replicas[0]!.url);
    await refresh(replicas[1]!.url);

    // both replicas re-seal at once while sign-ins and refreshes run on both
    const root = await signinAdmin(replicas[0]!.url);
    const traffic = (async () => {
      for (let round = 0; round < 4; round += 1) await refresh(replicas[round % 2]!.url);
      await totpSignin(replicas[1]!.url);
    })();
    const [first, second] = await Promise.all(
      replicas.map((replica) => http(replica.url, 'POST', '/admin/keys/master/reseal', { token: root })),
    );
    await traffic;
    expect(first!.status, first!.text).toBe(200);
    expect(second!.status, second!.text).toBe(200);
    expect(first!.json.resealed + second!.json.resealed).toBeGreaterThanOrEqual(3); // two signing keys and the TOTP secret at least
    expect(new Set(await sealedKeyIds())).toEqual(new Set([`v2.${keyId(NEW_KEY)}`]));

    // idempotent: nothing left to move
    const again = await http(replicas[1]!.url, 'POST', '/admin/keys/master/reseal', { token: root });
    expect(again.json).toEqual({ resealed: 0 });
    const audit = await db.query<{ changes: { resealed: number } }>(
      `SELECT changes FROM audit_records WHERE action = 'platform.keys.master_reseal' ORDER BY seq`,
    );
    expect(audit.rows.map((row) => row.changes.resealed)).toEqual(expect.arrayContaining([first!.json.resealed, second!.json.resealed, 0]));

    // the old key can go: sign-in with TOTP, refresh and token verification keep working
    await restart(0, NEW_KEY);
    await restart(1, NEW_KEY);
    await totpSignin(replicas[0]!.url);
    await refresh(replicas[1]!.url);
    await refresh(replicas[0]!.url);
  });

  it('refuses the re-seal without platform.keys.rotate', async () => {
    const result = await http(replicas[0]!.url, 'POST', '/admin/keys/master/reseal', { token: user.accessToken });
    expect(result.status, result.text).toBe(403);
  });

  it('stops start-up with one line naming MASTER_KEY when no configured key opens the stored data', async () => {
    // /health may answer while start-up is still under way; what counts is that the process ends with the line
    let output: string;
    try {
      const stranger = await spawnGatehouse(baseEnv(STRANGER_KEY), 'mk-stranger', { startTimeoutMs: 30_000 });
      const code = await Promise.race([stranger.exited, new Promise((resolve) => setTimeout(() => resolve('running'), 30_000))]);
      if (code === 'running') await stranger.stop('SIGKILL');
      expect(code).toBe(78);
      output = stranger.logs();
    } catch (error) {
      output = String(error);
    }
    expect(output).toMatch(/config: MASTER_KEY: cannot open the stored signing keys/);
  });
});
