import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, bootAppOnTestDatabase, type TestApp } from '../support/app';
import { ADMIN_EMAIL, ADMIN_PASSWORD, createTenant, inTenant, signinAdmin, userWithRole } from '../support/admin-fixtures';
import { bootstrapAdminEnv, signupUser, type SignedUp } from '../support/auth-flows';
import { type TestDatabase } from '../support/database';
import { decodeJwtPart, http, STRONG_PASSWORD, uniqueEmail } from '../support/http';
import { servicesAvailable } from '../support/services';

const available = servicesAvailable({ postgres: true, nats: true });

describe.skipIf(!available)('authorization and the admin IAM API', () => {
  let db: TestDatabase;
  let app: TestApp;
  let base: string;
  let root: string;
  let acmeAdmin: SignedUp;
  let globexAdmin: SignedUp;
  let acmeMember: SignedUp & { assignmentId: string };
  let globexMember: SignedUp;
  let outsider: SignedUp;

  let close: () => Promise<void>;

  beforeAll(async () => {
    ({ db, app, close } = await bootAppOnTestDatabase({ AUTH_ACCOUNT_FAILURE_LIMIT: '3', ...bootstrapAdminEnv() }));
    base = app.url;
    root = await signinAdmin(base);
    await createTenant(base, root, 'acme');
    await createTenant(base, root, 'globex');
    acmeAdmin = await userWithRole(base, root, 'acme', 'tenant_admin', 'acme-admin');
    globexAdmin = await userWithRole(base, root, 'globex', 'tenant_admin', 'globex-admin');
    acmeMember = await userWithRole(base, root, 'acme', 'tenant_member', 'acme-member');
    globexMember = await userWithRole(base, root, 'globex', 'tenant_member', 'globex-member');
    outsider = await signupUser(base, uniqueEmail('outsider'));
  });
  afterAll(() => close?.());

  const audits = async (action: string, targetId?: string) =>
    (
      await db.query<{ actor_id: string; target_id: string; tenant_id: string | null; changes: Record<string, unknown> }>(
        `SELECT actor_id, target_id, tenant_id, changes FROM audit_records WHERE action = $1 ${targetId ? 'AND target_id = $2' : ''} ORDER BY seq`,
        targetId ? [action, targetId] : [action],
      )
    ).rows;

  describe('x-tenant-id and decisions', () => {
    it('refuses a malformed tenant id with 400 invalid_tenant_id', async () => {
      const result = await http(base, 'GET', '/admin/users', { token: acmeAdmin.accessToken, headers: inTenant('Not_A_Tenant') });
      expect(result.status).toBe(400);
      expect(result.json.code).toBe('invalid_tenant_id');
    });

    it('answers 403 tenant_forbidden in a tenant without assignment, 403 forbidden for a missing right', async () => {
      const elsewhere = await http(base, 'GET', '/admin/users', { token: acmeAdmin.accessToken, headers: inTenant('globex') });
      expect(elsewhere.status).toBe(403);
      expect(elsewhere.json.code).toBe('tenant_forbidden');
      const member = await http(base, 'GET', '/admin/users', { token: acmeMember.accessToken, headers: inTenant('acme') });
      expect(member.status).toBe(403);
      expect(member.json.code).toBe('forbidden');
      const platformScope = await http(base, 'GET', '/admin/users', { token: acmeAdmin.accessToken });
      expect(platformScope.json.code).toBe('forbidden');
    });

    it('logs the decision and its reason with the request', async () => {
      const result = await http(base, 'GET', '/admin/users', { token: acmeMember.accessToken, headers: inTenant('acme') });
      const requestId = result.headers.get('x-request-id')!;
      const line = app
        .logs()
        .split('\n')
        .filter((entry) => entry.includes(requestId) && entry.includes('"msg":"request"'))
        .map((entry) => JSON.parse(entry) as { authz?: { decision: string; reason: string }; tenant_id?: string })[0];
      expect(line?.authz).toEqual({ decision: 'deny', reason: 'deny: no grant of iam.users.read in tenant acme' });
    });

    it('explains decisions with the matching grants', async () => {
      const allow = await http(
        base,
        'GET',
        `/admin/authz/explain?principal_id=${acmeMember.userId}&tenant_id=acme&right=commands.submit&resource=order`,
        { token: root },
      );
      expect(allow.status).toBe(200);
      expect(allow.json).toEqual({
        decision: 'allow',
        reason: 'allow: role tenant_member grants commands.submit:* for commands.submit on order in tenant acme',
        matched: [{ assignment_id: acmeMember.assignmentId, role: 'tenant_member', grant: 'commands.submit:*' }],
      });
      const deny = await http(base, 'GET', `/admin/authz/explain?principal_id=${acmeMember.userId}&tenant_id=globex&right=queries.run`, {
        token: root,
      });
      expect(deny.json).toEqual({ decision: 'deny', reason: 'deny: no assignment in tenant globex', matched: [] });
      const foreign = await http(base, 'GET', `/admin/authz/explain?principal_id=${globexMember.userId}&tenant_id=acme&right=queries.run`, {
        token: acmeAdmin.accessToken,
        headers: inTenant('acme'),
      });
      expect(foreign.status).toBe(404);
    });
  });

  describe('tenants', () => {
    it('lets platform admins manage tenants, audited once per change, and refuses tenant admins', async () => {
      const created = await http(base, 'POST', '/admin/tenants', { token: root, json: { id: 'initech', name: 'Initech' } });
      expect(created.status).toBe(201);
      expect(created.json).toMatchObject({ id: 'initech', name: 'Initech' });
      expect((await http(base, 'POST', '/admin/tenants', { token: root, json: { id: 'initech', name: 'Again' } })).json.code).toBe(
        'conflict',
      );
      expect((await http(base, 'PATCH', '/admin/tenants/initech', { token: root, json: { name: 'Initech Ltd' } })).json.name).toBe(
        'Initech Ltd',
      );
      const list = await http(base, 'GET', '/admin/tenants?limit=2', { token: root });
      expect(list.json.items).toHaveLength(2);
      expect(typeof list.json.next_cursor).toBe('string');
      const rest = await http(base, 'GET', `/admin/tenants?limit=2&cursor=${list.json.next_cursor}`, { token: root });
      expect(rest.json.items.map((tenant: { id: string }) => tenant.id)).toEqual(['initech']);
      expect((await http(base, 'GET', '/admin/tenants', { token: acmeAdmin.accessToken, headers: inTenant('acme') })).status).toBe(403);
      expect((await http(base, 'DELETE', '/admin/tenants/initech', { token: root })).status).toBe(204);
      expect((await http(base, 'GET', '/admin/tenants/initech', { token: root })).status).toBe(404);
      const rootId = decodeJwtPart(root, 1).sub;
      for (const action of ['platform.tenant.create', 'platform.tenant.update', 'platform.tenant.delete']) {
        const records = await audits(action, 'initech');
        expect(records, action).toHaveLength(1);
        expect(records[0]).toMatchObject({ actor_id: rootId, tenant_id: 'initech' });
      }
    });
  });

  describe('users', () => {
    it('scopes tenant admins to users assigned in their tenant (others are 404)', async () => {
      const own = await http(base, 'GET', `/admin/users/${acmeMember.userId}`, { token: acmeAdmin.accessToken, headers: inTenant('acme') });
      expect(own.status).toBe(200);
      expect(own.json).toMatchObject({ id: acmeMember.userId, email: acmeMember.email, status: 'active' });
      for (const id of [globexMember.userId, outsider.userId, 'no-such-id']) {
        expect((await http(base, 'GET', `/admin/users/${id}`, { token: acmeAdmin.accessToken, headers: inTenant('acme') })).status).toBe(
          404,
        );
      }
      expect(
        (await http(base, 'GET', `/admin/users/${acmeMember.userId}`, { token: globexAdmin.accessToken, headers: inTenant('globex') }))
          .status,
      ).toBe(404);
      const list = await http(base, 'GET', '/admin/users?limit=200', { token: acmeAdmin.accessToken, headers: inTenant('acme') });
      const ids = list.json.items.map((user: { id: string }) => user.id);
      expect(ids).toContain(acmeMember.userId);
      expect(ids).not.toContain(globexMember.userId);
      expect(ids).not.toContain(outsider.userId);
      const all = await http(base, 'GET', `/admin/users?email=${encodeURIComponent(outsider.email)}`, { token: root });
      expect(all.json.items.map((user: { id: string }) => user.id)).toEqual([outsider.userId]);
    });

    it('creates a user inside the tenant (assigned tenant_member there), audited with actor and tenant', async () => {
      const email = uniqueEmail('created');
      const created = await http(base, 'POST', '/admin/users', {
        token: acmeAdmin.accessToken,
        headers: inTenant('acme'),
        json: { email, password: STRONG_PASSWORD },
      });
      expect(created.status).toBe(201);
      expect(created.json).toMatchObject({ email, status: 'active', email_verified: false });
      const me = await http(base, 'POST', '/v1/auth/signin', { json: { email, password: STRONG_PASSWORD } });
      const profile = await http(base, 'GET', '/v1/auth/me', { token: me.json.access_token });
      expect(profile.json.memberships).toEqual([{ tenant_id: 'acme', roles: ['tenant_member'] }]);
      const records = await audits('iam.user.create', created.json.id);
      expect(records).toHaveLength(1);
      expect(records[0]).toMatchObject({ actor_id: acmeAdmin.userId, tenant_id: 'acme' });
      expect(JSON.stringify(records[0])).not.toContain(STRONG_PASSWORD);
      expect((await http(base, 'POST', '/admin/users', { token: root, json: { email, password: STRONG_PASSWORD } })).json.code).toBe(
        'email_taken',
      );
    });

    it('disables (tokens fail, sign-in says account_disabled) and enables again', async () => {
      const user = await userWithRole(base, root, 'acme', 'tenant_viewer', 'to-disable');
      const disabled = await http(base, 'POST', `/admin/users/${user.userId}/disable`, {
        token: acmeAdmin.accessToken,
        headers: inTenant('acme'),
      });
      expect(disabled.status).toBe(200);
      expect(disabled.json.status).toBe('disabled');
      expect((await http(base, 'GET', '/v1/auth/me', { token: user.accessToken })).status).toBe(401);
      expect((await http(base, 'POST', '/v1/auth/signin', { json: { email: user.email, password: user.password } })).json.code).toBe(
        'account_disabled',
      );
      expect((await http(base, 'POST', `/admin/users/${user.userId}/enable`, { token: root })).json.status).toBe('active');
      const again = await http(base, 'POST', '/v1/auth/signin', { json: { email: user.email, password: user.password } });
      expect(again.status).toBe(200);
      expect((await http(base, 'GET', '/v1/auth/me', { token: again.json.access_token })).status).toBe(200);
      expect(await audits('iam.user.disable', user.userId)).toHaveLength(1);
      expect(await audits('iam.user.enable', user.userId)).toHaveLength(1);
    });

    it('refuses account-wide changes by a tenant admin to a user who also belongs elsewhere', async () => {
      const shared = await userWithRole(base, root, 'acme', 'tenant_member', 'shared');
      await http(base, 'POST', '/admin/assignments', {
        token: root,
        json: { principal_id: shared.userId, tenant_id: 'globex', role_id: 'tenant_member' },
      });
      const result = await http(base, 'POST', `/admin/users/${shared.userId}/disable`, {
        token: acmeAdmin.accessToken,
        headers: inTenant('acme'),
      });
      expect(result.status).toBe(403);
    });

    it('unlocks a locked account (audited)', async () => {
      const user = await userWithRole(base, root, 'acme', 'tenant_member', 'locked');
      for (let i = 0; i < 3; i += 1) {
        await http(base, 'POST', '/v1/auth/signin', { json: { email: user.email, password: 'not the password at all' } });
      }
      expect((await http(base, 'POST', '/v1/auth/signin', { json: { email: user.email, password: user.password } })).status).toBe(429);
      expect(
        (await http(base, 'POST', `/admin/users/${user.userId}/unlock`, { token: acmeAdmin.accessToken, headers: inTenant('acme') }))
          .status,
      ).toBe(204);
      expect((await http(base, 'POST', '/v1/auth/signin', { json: { email: user.email, password: user.password } })).status).toBe(200);
      expect(await audits('iam.user.unlock', user.userId)).toHaveLength(1);
    });

    it('sets a password (signing the user out), and refuses to remove the last sign-in method', async () => {
      const user = await userWithRole(base, root, 'acme', 'tenant_member', 'pw');
      const set = await http(base, 'PUT', `/admin/users/${user.userId}/password`, {
        token: root,
        json: { password: 'an admin chosen passphrase' },
      });
      expect(set.status).toBe(204);
      expect((await http(base, 'GET', '/v1/auth/me', { token: user.accessToken })).status).toBe(401);
      expect(
        (await http(base, 'POST', '/v1/auth/signin', { json: { email: user.email, password: 'an admin chosen passphrase' } })).status,
      ).toBe(200);
      const removed = await http(base, 'DELETE', `/admin/users/${user.userId}/password`, { token: root });
      expect(removed.status).toBe(409);
      expect(removed.json.code).toBe('conflict');
    });

    it('lists and revokes a user’s sessions (global sign-out)', async () => {
      const user = await userWithRole(base, root, 'acme', 'tenant_member', 'sessions');
      const list = await http(base, 'GET', `/admin/users/${user.userId}/sessions`, {
        token: acmeAdmin.accessToken,
        headers: inTenant('acme'),
      });
      expect(list.json.items.map((session: { id: string }) => session.id)).toEqual([user.sessionId]);
      expect(
        (
          await http(base, 'POST', `/admin/users/${user.userId}/sessions/revoke`, {
            token: acmeAdmin.accessToken,
            headers: inTenant('acme'),
          })
        ).status,
      ).toBe(204);
      expect((await http(base, 'GET', '/v1/auth/me', { token: user.accessToken })).status).toBe(401);
      expect(
        (
          await http(base, 'POST', `/admin/users/${globexMember.userId}/sessions/revoke`, {
            token: acmeAdmin.accessToken,
            headers: inTenant('acme'),
          })
        ).status,
      ).toBe(404);
    });

    it('deletes a user: gone, tokens dead, audited', async () => {
      const user = await userWithRole(base, root, 'acme', 'tenant_member', 'delete-me');
      expect(
        (await http(base, 'DELETE', `/admin/users/${user.userId}`, { token: acmeAdmin.accessToken, headers: inTenant('acme') })).status,
      ).toBe(204);
      expect((await http(base, 'GET', `/admin/users/${user.userId}`, { token: root })).status).toBe(404);
      expect((await http(base, 'GET', '/v1/auth/me', { token: user.accessToken })).status).toBe(401);
      expect(await audits('iam.user.delete', user.userId)).toHaveLength(1);
    });
  });

  describe('roles, rights and assignments (no escalation)', () => {
    it('lets a tenant admin create a role with rights it holds, in its tenant', async () => {
      const role = await http(base, 'POST', '/admin/roles', {
        token: acmeAdmin.accessToken,
        headers: inTenant('acme'),
        json: { name: 'order-clerk', tenant_id: 'acme', grants: ['commands.submit:order*', 'queries.run:orders'] },
      });
      expect(role.status).toBe(201);
      expect(role.json).toMatchObject({
        name: 'order-clerk',
        tenant_id: 'acme',
        built_in: false,
        grants: ['commands.submit:order*', 'queries.run:orders'],
      });
      expect(typeof role.json.id).toBe('string');
      const hidden = await http(base, 'GET', `/admin/roles/${role.json.id}`, {
        token: globexAdmin.accessToken,
        headers: inTenant('globex'),
      });
      expect(hidden.status).toBe(404);
      const replaced = await http(base, 'PUT', `/admin/roles/${role.json.id}/rights`, {
        token: acmeAdmin.accessToken,
        headers: inTenant('acme'),
        json: { grants: ['queries.run:*'] },
      });
      expect(replaced.json.grants).toEqual(['queries.run:*']);
    });

    it('refuses every escalation attempt by a tenant admin: logged and counted, not in the audit trail', async () => {
      const attempts = [
        { path: '/admin/roles', json: { name: 'sneaky', tenant_id: 'acme', grants: ['runner.admin'] }, action: 'iam.role.create_denied' },
        { path: '/admin/roles', json: { name: 'sneaky2', tenant_id: 'acme', grants: ['*'] }, action: 'iam.role.create_denied' },
        {
          path: '/admin/roles',
          json: { name: 'elsewhere', tenant_id: 'globex', grants: ['queries.run:*'] },
          action: 'iam.role.create_denied',
        },
        {
          path: '/admin/assignments',
          json: { principal_id: acmeMember.userId, tenant_id: 'acme', role_id: 'platform_admin' },
          action: 'iam.assignment.create_denied',
        },
        {
          path: '/admin/assignments',
          json: { principal_id: acmeMember.userId, tenant_id: null, role_id: 'tenant_admin' },
          action: 'iam.assignment.create_denied',
        },
        {
          path: '/admin/assignments',
          json: { principal_id: acmeMember.userId, tenant_id: 'globex', role_id: 'tenant_member' },
          action: 'iam.assignment.create_denied',
        },
      ];
      // a per-request 403 (issue 11): in the request's log line and gatehouse_http_requests_total only
      const forbiddenCount = async (route: string) => {
        const line = (await http(base, 'GET', '/metrics')).text
          .split('\n')
          .find(
            (candidate) =>
              candidate.startsWith('gatehouse_http_requests_total{') &&
              candidate.includes('method="POST"') &&
              candidate.includes(`route="${route}"`) &&
              candidate.includes('status="403"'),
          );
        return line === undefined ? 0 : Number(line.split(' ').at(-1));
      };
      for (const attempt of attempts) {
        const before = await forbiddenCount(attempt.path);
        const result = await http(base, 'POST', attempt.path, {
          token: acmeAdmin.accessToken,
          headers: inTenant('acme'),
          json: attempt.json,
        });
        expect(result.status, JSON.stringify(attempt.json)).toBe(403);
        expect(result.json.code).toBe('forbidden');
        expect(await audits(attempt.action)).toEqual([]);
        expect(await forbiddenCount(attempt.path)).toBe(before + 1);
        expect(app.logs()).toContain(`escalation refused (${attempt.action.replace('_denied', '')}`);
      }
      expect(
        (await http(base, 'GET', `/admin/authz/explain?principal_id=${acmeMember.userId}&right=platform.keys.rotate`, { token: root })).json
          .decision,
      ).toBe('deny');
    });

    it('refuses to delete or change built-in roles and rights', async () => {
      expect((await http(base, 'DELETE', '/admin/roles/tenant_member', { token: root })).status).toBe(409);
      expect((await http(base, 'PATCH', '/admin/roles/tenant_member', { token: root, json: { grants: ['*'] } })).status).toBe(409);
      expect((await http(base, 'DELETE', '/admin/rights/commands.submit', { token: root })).status).toBe(409);
    });

    it('manages custom rights at platform scope', async () => {
      const created = await http(base, 'POST', '/admin/rights', {
        token: root,
        json: { key: 'reports.export', description: 'Export reports' },
      });
      expect(created.status).toBe(201);
      expect(created.json).toEqual({ key: 'reports.export', description: 'Export reports', built_in: false });
      expect(
        (await http(base, 'POST', '/admin/rights', { token: acmeAdmin.accessToken, headers: inTenant('acme'), json: { key: 'x.y' } }))
          .status,
      ).toBe(403);
      const list = await http(base, 'GET', '/admin/rights', { token: acmeAdmin.accessToken, headers: inTenant('acme') });
      expect(list.json.items.map((right: { key: string }) => right.key)).toContain('reports.export');
      expect(
        (await http(base, 'PATCH', '/admin/rights/reports.export', { token: root, json: { description: 'Export' } })).json.description,
      ).toBe('Export');
      expect((await http(base, 'DELETE', '/admin/rights/reports.export', { token: root })).status).toBe(204);
    });

    it('makes a new assignment effective on the next request, and its removal too', async () => {
      const user = await signupUser(base, uniqueEmail('promoted'));
      expect((await http(base, 'GET', '/admin/users', { token: user.accessToken, headers: inTenant('acme') })).json.code).toBe(
        'tenant_forbidden',
      );
      const assigned = await http(base, 'POST', '/admin/assignments', {
        token: acmeAdmin.accessToken,
        headers: inTenant('acme'),
        json: { principal_id: user.userId, tenant_id: 'acme', role_id: 'tenant_admin' },
      });
      expect(assigned.status).toBe(201);
      expect((await http(base, 'GET', '/admin/users', { token: user.accessToken, headers: inTenant('acme') })).status).toBe(200);
      const listed = await http(base, 'GET', `/admin/assignments?principal_id=${user.userId}`, {
        token: acmeAdmin.accessToken,
        headers: inTenant('acme'),
      });
      expect(listed.json.items).toHaveLength(1);
      expect(
        (await http(base, 'DELETE', `/admin/assignments/${assigned.json.id}`, { token: acmeAdmin.accessToken, headers: inTenant('acme') }))
          .status,
      ).toBe(204);
      expect((await http(base, 'GET', '/admin/users', { token: user.accessToken, headers: inTenant('acme') })).json.code).toBe(
        'tenant_forbidden',
      );
      expect(await audits('iam.assignment.create', user.userId)).toHaveLength(1);
      expect(await audits('iam.assignment.delete', user.userId)).toHaveLength(1);
    });
  });

  describe('service accounts', () => {
    it('issues client-credentials tokens, overlaps secrets on rotation, and dies on delete', async () => {
      const created = await http(base, 'POST', '/admin/service-accounts', {
        token: acmeAdmin.accessToken,
        headers: inTenant('acme'),
        json: { name: 'billing-bot' },
      });
      expect(created.status).toBe(201);
      expect(created.json).toMatchObject({ name: 'billing-bot', tenant_id: 'acme' });
      const { id, client_id: clientId, client_secret: secret } = created.json as { id: string; client_id: string; client_secret: string };
      const stored = await db.query<{ secret_hash: string }>(`SELECT secret_hash FROM service_accounts WHERE id = $1`, [id]);
      expect(stored.rows[0]!.secret_hash).not.toContain(secret);
      expect(
        (await http(base, 'GET', '/admin/service-accounts', { token: acmeAdmin.accessToken, headers: inTenant('acme') })).text,
      ).not.toContain(secret);

      const token = await http(base, 'POST', '/v1/auth/token', {
        json: { grant_type: 'client_credentials', client_id: clientId, client_secret: secret },
      });
      expect(token.status).toBe(200);
      expect(token.json).toMatchObject({ token_type: 'Bearer', expires_in: 600 });
      const claims = decodeJwtPart(token.json.access_token, 1);
      expect(claims).toMatchObject({ sub: id, principal_type: 'service_account' });
      expect(claims).not.toHaveProperty('sid');
      const form = await http(base, 'POST', '/v1/auth/token', {
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: secret }).toString(),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      expect(form.status).toBe(200);
      expect(
        (
          await http(base, 'POST', '/v1/auth/token', {
            json: { grant_type: 'client_credentials', client_id: clientId, client_secret: 'wrong' },
          })
        ).json.code,
      ).toBe('invalid_credentials');

      // assignments work for service accounts like for users
      expect((await http(base, 'GET', '/admin/users', { token: token.json.access_token, headers: inTenant('acme') })).status).toBe(403);
      await http(base, 'POST', '/admin/assignments', {
        token: acmeAdmin.accessToken,
        headers: inTenant('acme'),
        json: { principal_id: id, tenant_id: 'acme', role_id: 'tenant_admin' },
      });
      expect((await http(base, 'GET', '/admin/users', { token: token.json.access_token, headers: inTenant('acme') })).status).toBe(200);

      const rotated = await http(base, 'POST', `/admin/service-accounts/${id}/rotate-secret`, {
        token: acmeAdmin.accessToken,
        headers: inTenant('acme'),
      });
      expect(rotated.status).toBe(200);
      expect(rotated.json.client_secret).not.toBe(secret);
      for (const candidate of [secret, rotated.json.client_secret]) {
        expect(
          (
            await http(base, 'POST', '/v1/auth/token', {
              json: { grant_type: 'client_credentials', client_id: clientId, client_secret: candidate },
            })
          ).status,
        ).toBe(200);
      }
      await db.query(`UPDATE service_accounts SET previous_expires_at = now() - interval '1 second' WHERE id = $1`, [id]);
      expect(
        (
          await http(base, 'POST', '/v1/auth/token', {
            json: { grant_type: 'client_credentials', client_id: clientId, client_secret: secret },
          })
        ).status,
      ).toBe(401);

      expect(
        (await http(base, 'DELETE', `/admin/service-accounts/${id}`, { token: globexAdmin.accessToken, headers: inTenant('globex') }))
          .status,
      ).toBe(404);
      expect(
        (await http(base, 'DELETE', `/admin/service-accounts/${id}`, { token: acmeAdmin.accessToken, headers: inTenant('acme') })).status,
      ).toBe(204);
      expect((await http(base, 'GET', '/admin/users', { token: token.json.access_token, headers: inTenant('acme') })).status).toBe(401);
      expect(await audits('iam.service_account.create', id)).toHaveLength(1);
      expect(await audits('iam.service_account.rotate_secret', id)).toHaveLength(1);
      expect(await audits('iam.service_account.delete', id)).toHaveLength(1);
      const auditText = JSON.stringify((await db.query(`SELECT changes FROM audit_records WHERE target_id = $1`, [id])).rows);
      expect(auditText).not.toContain(secret);
      expect(auditText).not.toContain(rotated.json.client_secret);
    });

    it('keeps the bootstrap admin idempotent: one platform admin assignment after another start', async () => {
      const second = await bootApp({ DATABASE_URL: db.url, BOOTSTRAP_ADMIN_EMAIL: ADMIN_EMAIL, BOOTSTRAP_ADMIN_PASSWORD: ADMIN_PASSWORD });
      await second.close();
      const rows = await db.query<{ n: string }>(`SELECT count(*) AS n FROM assignments WHERE role_id = 'platform_admin'`);
      expect(Number(rows.rows[0]!.n)).toBe(1);
      expect(await audits('iam.bootstrap_admin')).toHaveLength(1);
    });
  });
});
