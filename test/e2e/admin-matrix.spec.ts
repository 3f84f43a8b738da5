import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant, inTenant, signinAdmin, userWithRole } from '../support/admin-fixtures';
import { bootAppOnTestDatabase, type TestApp } from '../support/app';
import { bootstrapAdminEnv, type SignedUp } from '../support/auth-flows';
import { type TestDatabase } from '../support/database';
import { decodeJwtPart, http, STRONG_PASSWORD, uniqueEmail } from '../support/http';
import { servicesAvailable } from '../support/services';

const available = servicesAvailable({ postgres: true, nats: true });

/** Fresh objects in tenant acme for one call, so every actor acts on an unused target. */
interface Target {
  userId: string;
  roleId: string;
  assignmentId: string;
  serviceAccountId: string;
}

interface Endpoint {
  name: string;
  method: string;
  path: (target: Target) => string;
  body?: (target: Target) => unknown;
  /** success status */
  ok: number;
  mutation: boolean;
  /** reachable by a tenant admin inside its tenant */
  tenantScoped: boolean;
  /** what another tenant's admin gets for acme's objects: 404 (hidden) or 200 (a list without them) */
  foreign: number;
}

const endpoints: Endpoint[] = [
  { name: 'list users', method: 'GET', path: () => '/admin/users', ok: 200, mutation: false, tenantScoped: true, foreign: 200 },
  {
    name: 'create user',
    method: 'POST',
    path: () => '/admin/users',
    body: () => ({ email: uniqueEmail('matrix'), password: STRONG_PASSWORD }),
    ok: 201,
    mutation: true,
    tenantScoped: true,
    foreign: 201,
  },
  { name: 'get user', method: 'GET', path: (t) => `/admin/users/${t.userId}`, ok: 200, mutation: false, tenantScoped: true, foreign: 404 },
  {
    name: 'update user',
    method: 'PATCH',
    path: (t) => `/admin/users/${t.userId}`,
    body: () => ({ display_name: 'Renamed' }),
    ok: 200,
    mutation: true,
    tenantScoped: true,
    foreign: 404,
  },
  {
    name: 'disable user',
    method: 'POST',
    path: (t) => `/admin/users/${t.userId}/disable`,
    ok: 200,
    mutation: true,
    tenantScoped: true,
    foreign: 404,
  },
  {
    name: 'enable user',
    method: 'POST',
    path: (t) => `/admin/users/${t.userId}/enable`,
    ok: 200,
    mutation: true,
    tenantScoped: true,
    foreign: 404,
  },
  {
    name: 'unlock user',
    method: 'POST',
    path: (t) => `/admin/users/${t.userId}/unlock`,
    ok: 204,
    mutation: true,
    tenantScoped: true,
    foreign: 404,
  },
  {
    name: 'set password',
    method: 'PUT',
    path: (t) => `/admin/users/${t.userId}/password`,
    body: () => ({ password: 'another long passphrase 9' }),
    ok: 204,
    mutation: true,
    tenantScoped: true,
    foreign: 404,
  },
  {
    name: 'list user sessions',
    method: 'GET',
    path: (t) => `/admin/users/${t.userId}/sessions`,
    ok: 200,
    mutation: false,
    tenantScoped: true,
    foreign: 404,
  },
  {
    name: 'revoke user sessions',
    method: 'POST',
    path: (t) => `/admin/users/${t.userId}/sessions/revoke`,
    ok: 204,
    mutation: true,
    tenantScoped: true,
    foreign: 404,
  },
  {
    name: 'reset mfa',
    method: 'POST',
    path: (t) => `/admin/users/${t.userId}/mfa/reset`,
    ok: 204,
    mutation: true,
    tenantScoped: true,
    foreign: 404,
  },
  {
    name: 'revoke recovery codes',
    method: 'POST',
    path: (t) => `/admin/users/${t.userId}/recovery-codes/revoke`,
    ok: 204,
    mutation: true,
    tenantScoped: true,
    foreign: 404,
  },
  {
    name: 'delete user',
    method: 'DELETE',
    path: (t) => `/admin/users/${t.userId}`,
    ok: 204,
    mutation: true,
    tenantScoped: true,
    foreign: 404,
  },
  { name: 'list roles', method: 'GET', path: () => '/admin/roles', ok: 200, mutation: false, tenantScoped: true, foreign: 200 },
  { name: 'get role', method: 'GET', path: (t) => `/admin/roles/${t.roleId}`, ok: 200, mutation: false, tenantScoped: true, foreign: 404 },
  {
    name: 'update role',
    method: 'PATCH',
    path: (t) => `/admin/roles/${t.roleId}`,
    body: () => ({ description: 'changed' }),
    ok: 200,
    mutation: true,
    tenantScoped: true,
    foreign: 404,
  },
  {
    name: 'set role grants',
    method: 'PUT',
    path: (t) => `/admin/roles/${t.roleId}/rights`,
    body: () => ({ grants: ['queries.run:*'] }),
    ok: 200,
    mutation: true,
    tenantScoped: true,
    foreign: 404,
  },
  {
    name: 'delete role',
    method: 'DELETE',
    path: (t) => `/admin/roles/${t.roleId}`,
    ok: 204,
    mutation: true,
    tenantScoped: true,
    foreign: 404,
  },
  { name: 'list assignments', method: 'GET', path: () => '/admin/assignments', ok: 200, mutation: false, tenantScoped: true, foreign: 200 },
  {
    name: 'delete assignment',
    method: 'DELETE',
    path: (t) => `/admin/assignments/${t.assignmentId}`,
    ok: 204,
    mutation: true,
    tenantScoped: true,
    foreign: 404,
  },
  {
    name: 'list service accounts',
    method: 'GET',
    path: () => '/admin/service-accounts',
    ok: 200,
    mutation: false,
    tenantScoped: true,
    foreign: 200,
  },
  {
    name: 'rotate service account secret',
    method: 'POST',
    path: (t) => `/admin/service-accounts/${t.serviceAccountId}/rotate-secret`,
    ok: 200,
    mutation: true,
    tenantScoped: true,
    foreign: 404,
  },
  {
    name: 'delete service account',
    method: 'DELETE',
    path: (t) => `/admin/service-accounts/${t.serviceAccountId}`,
    ok: 204,
    mutation: true,
    tenantScoped: true,
    foreign: 404,
  },
  {
    name: 'explain',
    method: 'GET',
    path: (t) => `/admin/authz/explain?principal_id=${t.userId}&tenant_id=acme&right=queries.run`,
    ok: 200,
    mutation: false,
    tenantScoped: true,
    foreign: 404,
  },
  { name: 'list audit', method: 'GET', path: () => '/admin/audit', ok: 200, mutation: false, tenantScoped: true, foreign: 200 },
  { name: 'export audit', method: 'GET', path: () => '/admin/audit/export', ok: 200, mutation: false, tenantScoped: true, foreign: 200 },
  {
    name: 'list identities',
    method: 'GET',
    path: (t) => `/admin/users/${t.userId}/identities`,
    ok: 200,
    mutation: false,
    tenantScoped: true,
    foreign: 404,
  },
  // platform-only
  { name: 'list tenants', method: 'GET', path: () => '/admin/tenants', ok: 200, mutation: false, tenantScoped: false, foreign: 403 },
  { name: 'verify audit', method: 'GET', path: () => '/admin/audit/verify', ok: 200, mutation: false, tenantScoped: false, foreign: 403 },
  {
    name: 'create right',
    method: 'POST',
    path: () => '/admin/rights',
    body: () => ({ key: `custom.r${Math.random().toString(36).slice(2, 8)}` }),
    ok: 201,
    mutation: true,
    tenantScoped: false,
    foreign: 403,
  },
  { name: 'rotate keys', method: 'POST', path: () => '/admin/keys/rotate', ok: 200, mutation: true, tenantScoped: false, foreign: 403 },
];

describe.skipIf(!available)('every admin endpoint × platform admin, tenant admin, other tenant admin, member', () => {
  let db: TestDatabase;
  let app: TestApp;
  let root: string;
  let rootId: string;
  let acmeAdmin: SignedUp;
  let globexAdmin: SignedUp;
  let member: SignedUp;
  let close: () => Promise<void>;

  beforeAll(async () => {
    ({ db, app, close } = await bootAppOnTestDatabase({
      // rotates right after start: no wait for the next key's publication (CONTRACT §6)
      JWKS_MAX_AGE: '0',
      ...bootstrapAdminEnv(),
    }));
    root = await signinAdmin(app.url);
    rootId = decodeJwtPart(root, 1).sub as string;
    await createTenant(app.url, root, 'acme');
    await createTenant(app.url, root, 'globex');
    acmeAdmin = await userWithRole(app.url, root, 'acme', 'tenant_admin', 'm-acme-admin');
    globexAdmin = await userWithRole(app.url, root, 'globex', 'tenant_admin', 'm-globex-admin');
    member = await userWithRole(app.url, root, 'acme', 'tenant_member', 'm-member');
  });
  afterAll(() => close?.());

  async function freshTarget(): Promise<Target> {
    const user = await userWithRole(app.url, root, 'acme', 'tenant_viewer', 'm-target');
    const role = await http(app.url, 'POST', '/admin/roles', {
      token: root,
      json: { name: `r-${Math.random().toString(36).slice(2, 9)}`, tenant_id: 'acme', grants: ['queries.run:*'] },
    });
    const account = await http(app.url, 'POST', '/admin/service-accounts', {
      token: root,
      json: { name: 'matrix-bot', tenant_id: 'acme' },
    });
    expect(role.status).toBe(201);
    expect(account.status).toBe(201);
    return { userId: user.userId, roleId: role.json.id, assignmentId: user.assignmentId, serviceAccountId: account.json.id };
  }

  async function call(endpoint: Endpoint, token: string, headers: Record<string, string>) {
    const target = await freshTarget();
    return http(app.url, endpoint.method, endpoint.path(target), { token, headers, json: endpoint.body?.(target) });
  }

  async function expectOneAudit(requestId: string, actorId: string, tenantId: string | null): Promise<void> {
    const rows = await db.query<{ actor_id: string; tenant_id: string | null; target_id: string | null }>(
      `SELECT actor_id, tenant_id, target_id FROM audit_records WHERE request_id = $1`,
      [requestId],
    );
    expect(rows.rows).toHaveLength(1);
    expect(rows.rows[0]!.actor_id).toBe(actorId);
    if (tenantId !== null) expect(rows.rows[0]!.tenant_id).toBe(tenantId);
    expect(rows.rows[0]!.target_id).not.toBeNull();
  }

  it.each(endpoints.map((endpoint) => [endpoint.name, endpoint] as const))('%s', async (_name, endpoint) => {
    const platform = await call(endpoint, root, {});
    expect(platform.status, `platform admin: ${platform.text}`).toBe(endpoint.ok);
    if (endpoint.mutation) await expectOneAudit(platform.headers.get('x-request-id')!, rootId, null);

    const acme = await call(endpoint, acmeAdmin.accessToken, inTenant('acme'));
    if (endpoint.tenantScoped) {
      expect(acme.status, `tenant admin in its tenant: ${acme.text}`).toBe(endpoint.ok);
      if (endpoint.mutation) await expectOneAudit(acme.headers.get('x-request-id')!, acmeAdmin.userId, 'acme');
    } else {
      expect(acme.status, 'tenant admin on a platform endpoint').toBe(403);
    }

    const foreign = await call(endpoint, globexAdmin.accessToken, inTenant('globex'));
    expect(foreign.status, `other tenant's admin: ${foreign.text}`).toBe(endpoint.foreign);
    if (endpoint.foreign === 200 && endpoint.method === 'GET' && foreign.json?.items !== undefined) {
      expect(JSON.stringify(foreign.json)).not.toContain('"acme"');
    }

    const memberCall = await call(endpoint, member.accessToken, inTenant('acme'));
    expect(memberCall.status, 'member').toBe(403);
    expect(memberCall.json.code).toBe('forbidden');
  });
});
