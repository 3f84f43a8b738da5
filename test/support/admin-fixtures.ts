import { expect } from 'vitest';
import { signupUser, type SignedUp } from './auth-flows';
import { http, uniqueEmail } from './http';

// the bootstrap admin and its sign-in live with the other sign-in flows; kept importable from here
export { ADMIN_EMAIL, ADMIN_PASSWORD, signinAdmin } from './auth-flows';

export async function createTenant(base: string, adminToken: string, id: string): Promise<void> {
  const result = await http(base, 'POST', '/admin/tenants', { token: adminToken, json: { id, name: `Tenant ${id}` } });
  expect(result.status, result.text).toBe(201);
}

/** Signs up a user and assigns it `role` in `tenant` (null = platform scope). */
export async function userWithRole(
  base: string,
  adminToken: string,
  tenant: string | null,
  role: string,
  prefix = role,
): Promise<SignedUp & { assignmentId: string }> {
  const user = await signupUser(base, uniqueEmail(prefix));
  const assigned = await http(base, 'POST', '/admin/assignments', {
    token: adminToken,
    json: { principal_id: user.userId, tenant_id: tenant, role_id: role },
  });
  expect(assigned.status, assigned.text).toBe(201);
  return { ...user, assignmentId: assigned.json.id as string };
}

export const inTenant = (tenant: string) => ({ 'x-tenant-id': tenant });
