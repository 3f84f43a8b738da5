import { describe, expect, it } from 'vitest';
import { decide, grantCovers, grantMatches, type GrantSource } from '../../src/authz/decision-engine';

const assignment = (tenantId: string | null, roleName: string, grants: string[], id = `${roleName}@${tenantId ?? '*'}`): GrantSource => ({
  assignmentId: id,
  tenantId,
  roleId: roleName,
  roleName,
  grants,
});

describe('grantMatches', () => {
  it.each([
    ['commands.submit', 'commands.submit', 'order', true],
    ['commands.submit', 'commands.submit', undefined, true],
    ['commands.submit:*', 'commands.submit', 'anything', true],
    ['commands.submit:*', 'commands.submit', undefined, true],
    ['commands.submit:order*', 'commands.submit', 'order', true],
    ['commands.submit:order*', 'commands.submit', 'orders-eu', true],
    ['commands.submit:order*', 'commands.submit', 'invoice', false],
    ['commands.submit:order*', 'commands.submit', undefined, false],
    ['commands.submit:ord?r', 'commands.submit', 'order', true],
    ['commands.submit:a.b', 'commands.submit', 'aXb', false],
    ['queries.run:*', 'commands.submit', 'order', false],
    ['*', 'platform.keys.rotate', undefined, true],
    ['commands', 'commands.submit', undefined, false],
  ])('%s gives %s on %s: %s', (grant, right, resource, expected) => {
    expect(grantMatches(grant, right, resource)).toBe(expected);
  });
});

describe('grantCovers (no escalation through role edits)', () => {
  it.each([
    ['*', 'runner.admin', true],
    ['commands.submit:*', 'commands.submit:order*', true],
    ['commands.submit', 'commands.submit:order*', true],
    ['commands.submit:order*', 'commands.submit:order-eu*', true],
    ['commands.submit:order*', 'commands.submit:*', false],
    ['commands.submit:order*', 'commands.submit', false],
    ['commands.submit:*', 'queries.run:*', false],
    ['iam.users.read', '*', false],
  ])('%s covers %s: %s', (held, wanted, expected) => {
    expect(grantCovers(held, wanted)).toBe(expected);
  });
});

describe('decide', () => {
  const member = assignment('acme', 'tenant_member', ['commands.submit:*', 'queries.run:*', 'streams.subscribe:*']);
  const viewer = assignment('globex', 'tenant_viewer', ['queries.run:*', 'streams.subscribe:*']);
  const orders = assignment('acme', 'order_clerk', ['commands.submit:order*']);

  it('allows a member in its tenant and names the matching role and grant', () => {
    const decision = decide({ principalId: 'p', tenantId: 'acme', right: 'commands.submit', resource: 'order', assignments: [member] });
    expect(decision.decision).toBe('allow');
    expect(decision.reason).toBe('allow: role tenant_member grants commands.submit:* for commands.submit on order in tenant acme');
    expect(decision.matched).toEqual([{ assignment_id: member.assignmentId, role: 'tenant_member', grant: 'commands.submit:*' }]);
  });

  it('refuses another tenant with tenant_forbidden (cross-tenant negative case)', () => {
    const decision = decide({ principalId: 'p', tenantId: 'globex', right: 'commands.submit', resource: 'order', assignments: [member] });
    expect(decision).toMatchObject({ decision: 'deny', code: 'tenant_forbidden', reason: 'deny: no assignment in tenant globex' });
  });

  it('refuses a right the roles in that tenant do not grant with forbidden', () => {
    const decision = decide({
      principalId: 'p',
      tenantId: 'globex',
      right: 'commands.submit',
      resource: 'order',
      assignments: [member, viewer],
    });
    expect(decision).toMatchObject({
      decision: 'deny',
      code: 'forbidden',
      reason: 'deny: no grant of commands.submit on order in tenant globex',
    });
  });

  it('applies resource globs', () => {
    expect(
      decide({ principalId: 'p', tenantId: 'acme', right: 'commands.submit', resource: 'orders', assignments: [orders] }).decision,
    ).toBe('allow');
    expect(
      decide({ principalId: 'p', tenantId: 'acme', right: 'commands.submit', resource: 'invoice', assignments: [orders] }).decision,
    ).toBe('deny');
  });

  it('lets platform-scope assignments act in every tenant and at platform scope; tenant ones only in theirs', () => {
    const admin = assignment(null, 'platform_admin', ['*']);
    expect(decide({ principalId: 'p', tenantId: 'anywhere', right: 'commands.submit', resource: 'x', assignments: [admin] }).decision).toBe(
      'allow',
    );
    expect(decide({ principalId: 'p', right: 'platform.keys.rotate', assignments: [admin] }).decision).toBe('allow');
    const tenantAdmin = assignment('acme', 'tenant_admin', ['iam.users.read']);
    expect(decide({ principalId: 'p', right: 'iam.users.read', assignments: [tenantAdmin] })).toMatchObject({
      decision: 'deny',
      code: 'forbidden',
      reason: 'deny: no grant of iam.users.read at platform scope',
    });
  });

  it('denies a principal without assignments', () => {
    expect(decide({ principalId: 'p', tenantId: 'acme', right: 'queries.run', assignments: [] }).code).toBe('tenant_forbidden');
    expect(decide({ principalId: 'p', right: 'queries.run', assignments: [] }).code).toBe('forbidden');
  });
});
