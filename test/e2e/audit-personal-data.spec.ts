import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootAppOnTestDatabase, type TestApp } from '../support/app';
import { ADMIN_EMAIL, bootstrapAdminEnv, signinAdmin } from '../support/auth-flows';
import { type TestDatabase } from '../support/database';
import { http, STRONG_PASSWORD, uniqueEmail } from '../support/http';
import { servicesAvailable } from '../support/services';

const available = servicesAvailable({ postgres: true, nats: true });

/**
 * CONTRACT §6 (wave 2): audit `changes` carry ids and flags, never an email or a name, so a
 * deleted user's personal data does not live on in the append-only trail. A run of the usual
 * mutations, then the whole trail is searched for every email and name the run used.
 */
describe.skipIf(!available)('audit trail without personal data', () => {
  let db: TestDatabase;
  let app: TestApp;
  let base: string;
  let close: () => Promise<void>;

  beforeAll(async () => {
    ({ db, app, close } = await bootAppOnTestDatabase(bootstrapAdminEnv()));
    base = app.url;
  });
  afterAll(() => close?.());

  it('records user, tenant, role, assignment and service-account mutations with no email or name in the trail', async () => {
    const admin = await signinAdmin(base);
    const asAdmin = (json: unknown) => ({ token: admin, json });
    const personal = {
      signupEmail: uniqueEmail('pd-signup'),
      signupName: 'Ada Signup Lovelace',
      createdEmail: uniqueEmail('pd-created'),
      createdName: 'Grace Created Hopper',
      newEmail: uniqueEmail('pd-renamed'),
      newName: 'Katherine Renamed Johnson',
      tenantName: 'Umbrella Personal Corporation',
      roleName: 'night-shift-supervisors',
      roleDescription: 'Role for Margaret Hamilton only',
      serviceAccountName: 'billing-robot-of-alan-turing',
    };

    const signup = await http(base, 'POST', '/v1/auth/signup', {
      json: { email: personal.signupEmail, password: STRONG_PASSWORD, display_name: personal.signupName },
    });
    expect(signup.status, signup.text).toBe(201);
    const tenant = await http(base, 'POST', '/admin/tenants', asAdmin({ id: 'pd-tenant', name: personal.tenantName }));
    expect(tenant.status, tenant.text).toBe(201);
    const renamedTenant = await http(base, 'PATCH', '/admin/tenants/pd-tenant', asAdmin({ name: `${personal.tenantName} Two` }));
    expect(renamedTenant.status, renamedTenant.text).toBe(200);
    const user = await http(
      base,
      'POST',
      '/admin/users',
      asAdmin({ email: personal.createdEmail, password: STRONG_PASSWORD, display_name: personal.createdName }),
    );
    expect(user.status, user.text).toBe(201);
    const userId = user.json.id as string;
    const updated = await http(
      base,
      'PATCH',
      `/admin/users/${userId}`,
      asAdmin({ email: personal.newEmail, display_name: personal.newName }),
    );
    expect(updated.status, updated.text).toBe(200);
    const role = await http(
      base,
      'POST',
      '/admin/roles',
      asAdmin({ name: personal.roleName, tenant_id: 'pd-tenant', description: personal.roleDescription, grants: ['queries.run:*'] }),
    );
    expect(role.status, role.text).toBe(201);
    const assignment = await http(
      base,
      'POST',
      '/admin/assignments',
      asAdmin({ principal_id: userId, tenant_id: 'pd-tenant', role_id: role.json.id }),
    );
    expect(assignment.status, assignment.text).toBe(201);
    const robot = await http(
      base,
      'POST',
      '/admin/service-accounts',
      asAdmin({ name: personal.serviceAccountName, tenant_id: 'pd-tenant' }),
    );
    expect(robot.status, robot.text).toBe(201);
    const deleted = await http(base, 'DELETE', `/admin/users/${userId}`, { token: admin });
    expect(deleted.status, deleted.text).toBe(204);

    const trail = await db.query<{ action: string; target_id: string | null; record: string }>(
      `SELECT action, target_id, row_to_json(r)::text AS record FROM audit_records r ORDER BY seq`,
    );
    const actions = trail.rows.map((row) => row.action);
    for (const action of [
      'iam.bootstrap_admin',
      'user.signup',
      'platform.tenant.create',
      'platform.tenant.update',
      'iam.user.create',
      'iam.user.update',
      'iam.role.create',
      'iam.assignment.create',
      'iam.service_account.create',
      'iam.user.delete',
    ]) {
      expect(actions, action).toContain(action);
    }
    // the records name what changed by id, and say that a name or an email changed by a flag
    const update = trail.rows.find((row) => row.action === 'iam.user.update')!;
    expect(JSON.parse(update.record).changes).toEqual({ email_changed: true, display_name_changed: true });
    expect(trail.rows.find((row) => row.action === 'iam.user.create')!.target_id).toBe(userId);

    const whole = trail.rows.map((row) => row.record).join('\n');
    const strings = [ADMIN_EMAIL, ...Object.values(personal)];
    for (const value of strings) expect(whole.toLowerCase().includes(value.toLowerCase()), `"${value}" is in the audit trail`).toBe(false);
    // nothing that looks like an email address at all
    expect(whole).not.toMatch(/[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/);
  });
});
