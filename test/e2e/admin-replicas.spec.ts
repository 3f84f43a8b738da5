import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant, inTenant, signinAdmin, userWithRole } from '../support/admin-fixtures';
import { bootstrapAdminEnv } from '../support/auth-flows';
import { http } from '../support/http';
import { waitFor, type GatehouseProcess } from '../support/process';
import { spawnReplicaPair } from '../support/replicas';
import { servicesAvailable } from '../support/services';

const available = servicesAvailable({ postgres: true, nats: true });

describe.skipIf(!available)('authorization changes across two replicas', () => {
  let a: GatehouseProcess;
  let b: GatehouseProcess;
  let root: string;
  let stop: () => Promise<void>;

  beforeAll(async () => {
    ({ a, b, stop } = await spawnReplicaPair('authz', {
      MASTER_KEY: Buffer.alloc(32, 5).toString('base64'),
      ...bootstrapAdminEnv(),
      LOG_LEVEL: 'warn',
    }));
    root = await signinAdmin(a.url);
    await createTenant(a.url, root, 'acme');
  });
  afterAll(() => stop?.());

  it('denies on replica B within 1 s after an assignment is removed on replica A', async () => {
    const user = await userWithRole(a.url, root, 'acme', 'tenant_admin', 'cross-assign');
    // B has the allow cached
    expect((await http(b.url, 'GET', '/admin/users', { token: user.accessToken, headers: inTenant('acme') })).status).toBe(200);
    expect((await http(a.url, 'DELETE', `/admin/assignments/${user.assignmentId}`, { token: root })).status).toBe(204);
    const elapsed = await waitFor(
      async () => (await http(b.url, 'GET', '/admin/users', { token: user.accessToken, headers: inTenant('acme') })).status === 403,
      1000,
      10,
    );
    expect(elapsed).toBeLessThanOrEqual(1000);
  });

  it('refuses a disabled account’s token on replica B within 1 s', async () => {
    const user = await userWithRole(a.url, root, 'acme', 'tenant_member', 'cross-disable');
    expect((await http(b.url, 'GET', '/v1/auth/me', { token: user.accessToken })).status).toBe(200);
    expect((await http(a.url, 'POST', `/admin/users/${user.userId}/disable`, { token: root })).status).toBe(200);
    const elapsed = await waitFor(
      async () => (await http(b.url, 'GET', '/v1/auth/me', { token: user.accessToken })).status === 401,
      1000,
      10,
    );
    expect(elapsed).toBeLessThanOrEqual(1000);
  });

  it('applies a role’s new grants on replica B at once', async () => {
    const role = await http(a.url, 'POST', '/admin/roles', {
      token: root,
      json: { name: 'auditor', tenant_id: 'acme', grants: ['iam.audit.read'] },
    });
    expect(role.status).toBe(201);
    const user = await userWithRole(a.url, root, 'acme', role.json.id as string, 'cross-role');
    expect((await http(b.url, 'GET', '/admin/users', { token: user.accessToken, headers: inTenant('acme') })).status).toBe(403);
    await http(a.url, 'PUT', `/admin/roles/${role.json.id}/rights`, {
      token: root,
      json: { grants: ['iam.audit.read', 'iam.users.read'] },
    });
    await waitFor(
      async () => (await http(b.url, 'GET', '/admin/users', { token: user.accessToken, headers: inTenant('acme') })).status === 200,
      1000,
      10,
    );
  });
});
