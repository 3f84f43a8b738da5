import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '..', '..');
const bin = (name: string) => path.join(ROOT, 'node_modules', '.bin', name);

/**
 * What an Admin UI developer does: generate types from docs/openapi.json with openapi-typescript
 * and write a small client against them. The client must type-check under `strict`, and the
 * types must be real (a wrong field is an error; no answer is `never`/`unknown`).
 */
const CLIENT = `
import type { paths } from './gatehouse';

type JsonBody<Op> = Op extends { requestBody?: infer R } ? (NonNullable<R> extends { content: { 'application/json': infer B } } ? B : never) : never;
type JsonAnswer<Op, Status extends number> = Op extends { responses: infer R }
  ? Status extends keyof R
    ? R[Status] extends { content: { 'application/json': infer B } }
      ? B
      : never
    : never
  : never;
type Real<T> = [T] extends [never] ? false : unknown extends T ? false : true;

async function send(base: string, method: string, route: string, body?: unknown, token?: string): Promise<unknown> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== undefined) headers.authorization = 'Bearer ' + token;
  const response = await fetch(base + route, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return response.json();
}

type SignIn = paths['/v1/auth/signin']['post'];
type Me = paths['/v1/auth/me']['get'];
type ListTenants = paths['/admin/tenants']['get'];
type CreateUser = paths['/admin/users']['post'];
type ClientToken = paths['/v1/auth/token']['post'];

const realSignIn: Real<JsonAnswer<SignIn, 200>> = true;
const realMe: Real<JsonAnswer<Me, 200>> = true;
const realList: Real<JsonAnswer<ListTenants, 200>> = true;
const realCreate: Real<JsonAnswer<CreateUser, 201>> = true;
const realToken: Real<JsonAnswer<ClientToken, 200>> = true;
export const checks = [realSignIn, realMe, realList, realCreate, realToken];

export async function adminSession(base: string, email: string, password: string): Promise<string> {
  const credentials: JsonBody<SignIn> = { email, password };
  const signin = (await send(base, 'POST', '/v1/auth/signin', credentials)) as JsonAnswer<SignIn, 200>;
  if ('mfa_required' in signin) throw new Error('MFA pending: ' + signin.mfa_methods.join(','));
  const token: string = signin.access_token;
  const refresh: string = signin.refresh_token;

  const me = (await send(base, 'GET', '/v1/auth/me', undefined, token)) as JsonAnswer<Me, 200>;
  const verified: boolean = me.user.email_verified;
  const tenants: string[] = me.memberships.map((membership) => membership.tenant_id);

  const page = (await send(base, 'GET', '/admin/tenants?limit=10', undefined, token)) as JsonAnswer<ListTenants, 200>;
  const names: string[] = page.items.map((tenant) => tenant.name);
  const next: string | null = page.next_cursor;

  const newUser: JsonBody<CreateUser> = { email: 'new@example.com', display_name: 'New' };
  const created = (await send(base, 'POST', '/admin/users', newUser, token)) as JsonAnswer<CreateUser, 201>;
  const status: 'active' | 'disabled' = created.status;

  // @ts-expect-error the create body has no such field
  const wrongBody: JsonBody<CreateUser> = { email: 'x@example.com', nickname: 'x' };
  // @ts-expect-error a tenant has no email
  const wrongField: string = page.items[0]!.email;

  const grant: JsonBody<ClientToken> = { grant_type: 'client_credentials', client_id: 'id', client_secret: 'secret' };
  const service = (await send(base, 'POST', '/v1/auth/token', grant)) as JsonAnswer<ClientToken, 200>;
  const expires: number = service.expires_in;

  return [token, refresh, verified, tenants, names, next, created.id, status, wrongBody, wrongField, expires].join(' ');
}
`;

describe('typed client generated from docs/openapi.json', () => {
  it('openapi-typescript generates types a strict client type-checks against (sign-in, /me, a list, a create)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-openapi-client-'));
    const generate = spawnSync(
      bin('openapi-typescript'),
      [path.join(ROOT, 'docs', 'openapi.json'), '-o', path.join(dir, 'gatehouse.d.ts')],
      {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 120_000,
      },
    );
    expect(generate.status, generate.stdout + generate.stderr).toBe(0);
    fs.writeFileSync(path.join(dir, 'client.ts'), CLIENT);
    const check = spawnSync(
      bin('tsc'),
      [
        '--noEmit',
        '--strict',
        '--target',
        'es2023',
        '--lib',
        'es2023,dom',
        '--module',
        'nodenext',
        '--moduleResolution',
        'nodenext',
        '--skipLibCheck',
        'client.ts',
      ],
      { cwd: dir, encoding: 'utf8', timeout: 120_000 },
    );
    expect(check.status, check.stdout + check.stderr).toBe(0);
  });
});
