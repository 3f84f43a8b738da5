import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { GENESIS_HASH } from '../../src/audit/audit-chain';
import { chainBreak, CHAIN_START } from '../../src/audit/audit-record';
import { AuditRepository } from '../../src/audit/audit.repository';
import { AuditService } from '../../src/audit/audit.service';
import { RecoveryCodeRepository } from '../../src/authn/mfa/recovery-code.repository';
import { TotpCredentialRepository } from '../../src/authn/mfa/totp-credential.repository';
import { RateLimitCounterRepository } from '../../src/authn/rate-limit-counter.repository';
import { AssignmentRepository } from '../../src/authz/assignment.repository';
import { RightRepository } from '../../src/authz/right.repository';
import { RoleRepository } from '../../src/authz/role.repository';
import { TenantRepository } from '../../src/authz/tenant.repository';
import { MIGRATIONS_DIR } from '../../src/database/database.module';
import { applyMigrations } from '../../src/database/migrator';
import { PrismaService, queryPrepared } from '../../src/database/prisma.service';
import { isUniqueViolation } from '../../src/database/transaction';
import { DeletedPrincipalRepository } from '../../src/identity/deleted-principal.repository';
import { ServiceAccountRepository } from '../../src/identity/service-account.repository';
import { UserRepository } from '../../src/identity/user.repository';
import { SessionRepository } from '../../src/session/session.repository';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { servicesAvailable } from '../support/services';

const available = servicesAvailable({ postgres: true });

/**
 * The repositories against real PostgreSQL (migrated schema, seeded built-in roles and rights):
 * what each named method reads and writes, including the cascades and the tenant filters
 * that keep one tenant's rows out of another's answers.
 */
describe.skipIf(!available)('repositories on PostgreSQL', () => {
  let db: TestDatabase;
  let prisma: PrismaService;
  const tenants = new TenantRepository();
  const roles = new RoleRepository();
  const rights = new RightRepository();
  const assignments = new AssignmentRepository();
  const users = new UserRepository();
  const serviceAccounts = new ServiceAccountRepository();
  const deleted = new DeletedPrincipalRepository();
  const sessions = new SessionRepository();
  const counters = new RateLimitCounterRepository();
  const totp = new TotpCredentialRepository();
  const recoveryCodes = new RecoveryCodeRepository();

  beforeAll(async () => {
    db = await createTestDatabase('gh_repo');
    await applyMigrations(db.url, MIGRATIONS_DIR, () => undefined);
    prisma = new PrismaService(db.url, 2);
  });
  afterAll(async () => {
    await prisma?.$disconnect();
    await db?.drop();
  });

  const newUser = (email: string, passwordHash: string | null = null) => users.createWithPassword(prisma, { email, passwordHash });

  it("queryPrepared: a prepared statement on the pool outside a transaction, the transaction's own connection inside one", async () => {
    const statement = { name: 'test_txid', text: 'SELECT txid_current_if_assigned()::text AS txid' };
    const onPool = vi.spyOn(prisma, 'prepared');
    const [outside] = await queryPrepared<{ txid: string | null }>(prisma, statement, []);
    expect(outside!.txid).toBeNull();
    expect(onPool).toHaveBeenCalledTimes(1);
    await prisma.$transaction(async (tx) => {
      const [assigned] = await tx.$queryRawUnsafe<Array<{ txid: string }>>('SELECT txid_current()::text AS txid');
      // a statement sent on the pool would see no transaction id: this one runs inside the transaction
      const [inside] = await queryPrepared<{ txid: string | null }>(tx, statement, []);
      expect(inside!.txid).toBe(assigned!.txid);
    });
    expect(onPool).toHaveBeenCalledTimes(1);
    onPool.mockRestore();
  });

  it('tenants: create, keyset pages, rename; a taken id is a unique violation', async () => {
    for (const id of ['t-a', 't-b', 't-c']) await tenants.create(prisma, { id, name: id.toUpperCase() });
    const first = await tenants.list(prisma, undefined, 2);
    expect(first.map((tenant) => tenant.id)).toEqual(['t-a', 't-b']);
    expect((await tenants.list(prisma, 't-b', 2)).map((tenant) => tenant.id)).toEqual(['t-c']);
    expect((await tenants.rename(prisma, 't-c', 'Renamed')).name).toBe('Renamed');
    expect(await tenants.exists(prisma, 't-c')).toBe(true);
    expect(await tenants.exists(prisma, 'nope')).toBe(false);
    const duplicate = await tenants.create(prisma, { id: 't-a', name: 'again' }).catch((error: unknown) => error);
    expect(isUniqueViolation(duplicate)).toBe(true);
  });

  it("roles: a tenant sees platform roles and its own, never another tenant's", async () => {
    await tenants.create(prisma, { id: 'r-one', name: 'one' });
    await tenants.create(prisma, { id: 'r-two', name: 'two' });
    const mine = await roles.create(prisma, { name: 'auditor', tenantId: 'r-one', description: null, grants: ['iam.audit.read'] });
    const theirs = await roles.create(prisma, { name: 'auditor', tenantId: 'r-two', description: null, grants: ['iam.audit.read'] });
    const visible = (await roles.list(prisma, { visibleInTenant: 'r-one' }, 100)).map((role) => role.id);
    expect(visible).toContain(mine.id);
    expect(visible).toContain('tenant_member');
    expect(visible).not.toContain(theirs.id);
    expect((await roles.update(prisma, mine.id, { grants: ['iam.users.read'] })).grants).toEqual(['iam.users.read']);
    expect((await roles.findById(prisma, mine.id))?.grants).toEqual(['iam.users.read']);
  });

  it('assignments: memberships, visibility checks, platform admins; deleting a tenant takes its roles and assignments', async () => {
    await tenants.create(prisma, { id: 'a-one', name: 'one' });
    await tenants.create(prisma, { id: 'a-two', name: 'two' });
    const user = await newUser('assigned@example.com');
    const role = await roles.create(prisma, { name: 'local', tenantId: 'a-two', description: null, grants: [] });
    await assignments.create(prisma, { principalId: user.id, principalType: 'user', tenantId: 'a-one', roleId: 'tenant_member' });
    await assignments.create(prisma, { principalId: user.id, principalType: 'user', tenantId: 'a-one', roleId: 'tenant_viewer' });
    const duplicate = await assignments
      .create(prisma, { principalId: user.id, principalType: 'user', tenantId: 'a-one', roleId: 'tenant_member' })
      .catch((error: unknown) => error);
    expect(isUniqueViolation(duplicate)).toBe(true);
    expect(await assignments.userIdsInTenant(prisma, 'a-one')).toEqual([user.id]);
    expect(await assignments.isAssignedInTenant(prisma, user.id, 'a-one')).toBe(true);
    expect(await assignments.isAssignedInTenant(prisma, user.id, 'a-two')).toBe(false);
    expect(await assignments.isAssignedOutside(prisma, user.id, 'a-one')).toBe(false);

    await assignments.create(prisma, { principalId: user.id, principalType: 'user', tenantId: 'a-two', roleId: role.id });
    expect(await assignments.isAssignedOutside(prisma, user.id, 'a-one')).toBe(true);
    expect(await assignments.tenantRolesOf(prisma, user.id)).toEqual([
      { tenantId: 'a-one', roleName: 'tenant_member' },
      { tenantId: 'a-one', roleName: 'tenant_viewer' },
      { tenantId: 'a-two', roleName: 'local' },
    ]);
    expect(await assignments.countInTenant(prisma, 'a-two')).toBe(1);

    const admins = await assignments.countPlatformAdmins(prisma);
    await assignments.create(prisma, { principalId: user.id, principalType: 'user', tenantId: null, roleId: 'platform_admin' });
    expect(await assignments.countPlatformAdmins(prisma)).toBe(admins + 1);
    expect(await assignments.isPlatformAdmin(prisma, user.id)).toBe(true);

    await tenants.delete(prisma, 'a-two');
    expect(await roles.findById(prisma, role.id)).toBeNull();
    expect(await assignments.countInTenant(prisma, 'a-two')).toBe(0);
    await assignments.deleteAllOf(prisma, user.id);
    expect(await assignments.list(prisma, { principalId: user.id }, 10)).toEqual([]);
  });

  it('rights: counts the roles granting a right bare or with a resource glob, not a longer key', async () => {
    await rights.create(prisma, { key: 'reports.export', description: null });
    await rights.create(prisma, { key: 'reports.exportall', description: null });
    await roles.create(prisma, { name: 'bare', tenantId: null, description: null, grants: ['reports.export'] });
    await roles.create(prisma, { name: 'globbed', tenantId: null, description: null, grants: ['reports.export:eu-*'] });
    await roles.create(prisma, { name: 'longer', tenantId: null, description: null, grants: ['reports.exportall'] });
    expect(await rights.countRolesGranting(prisma, 'reports.export')).toBe(2);
    expect((await rights.keys(prisma)).has('reports.exportall')).toBe(true);
    expect((await rights.updateDescription(prisma, 'reports.exportall', 'All')).description).toBe('All');
  });

  it('users: filtered keyset list, profile change unverifies a changed email, password presence, inactive ids', async () => {
    const alice = await newUser('alice@list.example', 'hash-a');
    const bob = await newUser('bob@list.example');
    await users.markEmailVerified(prisma, alice.id);
    expect((await users.list(prisma, { email: 'LIST.EXAMPLE' }, 10)).map((user) => user.email)).toEqual([
      'alice@list.example',
      'bob@list.example',
    ]);
    expect((await users.list(prisma, { email: 'list.example', ids: [bob.id] }, 10)).map((user) => user.id)).toEqual([bob.id]);
    expect(await users.list(prisma, { email: 'list.example', ids: [] }, 10)).toEqual([]);

    const renamed = await users.updateProfile(prisma, alice.id, { displayName: 'Alice' });
    expect(renamed.emailVerifiedAt).not.toBeNull();
    const moved = await users.updateProfile(prisma, alice.id, { email: 'alice2@list.example' });
    expect(moved.emailVerifiedAt).toBeNull();
    expect(moved.displayName).toBe('Alice');

    expect(await users.hasPassword(prisma, alice.id)).toBe(true);
    await users.deletePassword(prisma, alice.id);
    expect(await users.hasPassword(prisma, alice.id)).toBe(false);

    await users.setStatus(prisma, bob.id, 'disabled');
    expect(await users.inactiveIds(prisma)).toContain(bob.id);
    expect(await users.inactiveIds(prisma)).not.toContain(alice.id);
  });

  it('service accounts: by client id, rotation keeps the old hash, a tenant lists only its own', async () => {
    await tenants.create(prisma, { id: 's-one', name: 'one' });
    await tenants.create(prisma, { id: 's-two', name: 'two' });
    const mine = await serviceAccounts.create(prisma, { name: 'ci', tenantId: 's-one', clientId: 'sa_mine', secretHash: 'h1' });
    const theirs = await serviceAccounts.create(prisma, { name: 'ci', tenantId: 's-two', clientId: 'sa_theirs', secretHash: 'h2' });
    expect((await serviceAccounts.findByClientId(prisma, 'sa_mine'))?.id).toBe(mine.id);
    expect((await serviceAccounts.list(prisma, { tenantId: 's-one' }, 10)).map((account) => account.id)).toEqual([mine.id]);
    expect(await serviceAccounts.isOwnedByTenant(prisma, theirs.id, 's-one')).toBe(false);
    const until = new Date(Date.now() + 60_000);
    const rotated = await serviceAccounts.rotateSecret(prisma, mine.id, {
      secretHash: 'h3',
      previousSecretHash: 'h1',
      previousExpiresAt: until,
    });
    expect([rotated.secretHash, rotated.previousSecretHash, rotated.previousExpiresAt?.getTime()]).toEqual(['h3', 'h1', until.getTime()]);
    await serviceAccounts.delete(prisma, mine.id);
    expect(await serviceAccounts.exists(prisma, mine.id)).toBe(false);
  });

  it('deleted principals and revoked sessions are read back by time', async () => {
    const before = new Date(Date.now() - 1000);
    await deleted.remember(prisma, 'gone-1');
    await deleted.remember(prisma, 'gone-1');
    expect(await deleted.deletedSince(prisma, before)).toEqual(['gone-1']);
    expect(await deleted.deletedSince(prisma, new Date(Date.now() + 60_000))).toEqual([]);

    const user = await newUser('sessions@example.com');
    const session = await sessions.createSession(prisma, { userId: user.id, amr: ['pwd'], expiresAt: new Date(Date.now() + 3_600_000) });
    expect(await sessions.revokeSessions(prisma, { userId: user.id }, 'test')).toEqual([session.id]);
    const revoked = await sessions.revokedSince(prisma, before);
    expect(revoked.map((row) => row.id)).toContain(session.id);
    expect(revoked.find((row) => row.id === session.id)?.revokedAt).toBeInstanceOf(Date);
  });

  it('MFA rows: deleting reports what was there', async () => {
    const user = await newUser('mfa@example.com');
    expect(await totp.delete(prisma, user.id)).toBe(false);
    await totp.savePending(prisma, user.id, 'sealed');
    expect(await totp.delete(prisma, user.id)).toBe(true);
    await recoveryCodes.replaceAll(prisma, user.id, ['c1', 'c2', 'c3']);
    await recoveryCodes.consume(prisma, user.id, 'c1');
    expect(await recoveryCodes.deleteAll(prisma, user.id)).toBe(3);
  });

  it('rate-limit counters count within a window and clear by key', async () => {
    expect((await counters.hit(prisma, 'test:k', 60)).count).toBe(1);
    const second = await counters.hit(prisma, 'test:k', 60);
    expect(second.count).toBe(2);
    expect(second.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(second.retryAfterSeconds).toBeLessThanOrEqual(60);
    expect(await counters.clear(prisma, ['test:k', 'test:absent'])).toBe(1);
    expect((await counters.hit(prisma, 'test:k', 60)).count).toBe(1);
  });

  it('rate-limit counter chains count the next link only while the previous is within its limit, and clear by account', async () => {
    const links = [
      { key: 'chain:ip', limit: 100 },
      { key: 'chain:acct|ip', limit: 2, account: 'chain:acct' },
      { key: 'chain:acct', limit: 100, account: 'chain:acct' },
    ];
    const counts = async () => (await counters.hitChain(prisma, links, 60)).map((hit) => hit?.count ?? null);
    expect(await counts()).toEqual([1, 1, 1]);
    expect(await counts()).toEqual([2, 2, 2]);
    // the (account, IP) link is over its limit: the account's overall counter is left alone
    expect(await counts()).toEqual([3, 3, null]);
    expect(await counts()).toEqual([4, 4, null]);
    await counters.release(prisma, ['chain:acct|ip', 'chain:acct']);
    expect(await counts()).toEqual([5, 4, null]);
    // every counter of the account goes, by its account column; the IP's stays
    expect(await counters.clear(prisma, [], ['chain:acct'])).toBe(2);
    expect(await counts()).toEqual([6, 1, 1]);
  });

  it('a sign-in counts its attempt and reads the account in one statement, on the pool and inside a transaction', async () => {
    const user = await newUser('chain-reader@example.com', '$argon2id$v=19$m=19456,t=2,p=1$stored');
    const links = [
      { key: 'reader:ip', limit: 1 },
      { key: 'reader:acct', limit: 100, account: 'reader' },
    ];
    const onPool = vi.spyOn(prisma, 'prepared');
    const first = await counters.hitChainAndFindSigninAccount(prisma, links, 60, 'chain-reader@example.com');
    expect(onPool).toHaveBeenCalledTimes(1);
    onPool.mockRestore();
    expect(first.hits.map((hit) => hit?.count ?? null)).toEqual([1, 1]);
    expect(first.account).toEqual({
      id: user.id,
      email: 'chain-reader@example.com',
      emailVerifiedAt: null,
      displayName: null,
      status: 'active',
      passwordHash: '$argon2id$v=19$m=19456,t=2,p=1$stored',
      totpConfirmed: false,
    });
    // the IP is now over its limit: the account is not counted, and an unknown address reads as null
    const second = await prisma.$transaction((tx) => counters.hitChainAndFindSigninAccount(tx, links, 60, 'nobody@example.com'));
    expect(second.hits.map((hit) => hit?.count ?? null)).toEqual([2, null]);
    expect(second.account).toBeNull();
    expect((await prisma.rateLimitCounter.findUnique({ where: { key: 'reader:acct' } }))?.count).toBe(1);
    // a refused attempt does not read the account at all: a known address reads as null too
    const refused = await counters.hitChainAndFindSigninAccount(prisma, links, 60, 'chain-reader@example.com');
    expect(refused.hits.map((hit) => hit?.count ?? null)).toEqual([3, null]);
    expect(refused.account).toBeNull();
    // and so does one refused by the last link (the account's own budget)
    const accountLinks = [
      { key: 'reader2:ip', limit: 100 },
      { key: 'reader2:acct', limit: 1, account: 'reader2' },
    ];
    const within = await counters.hitChainAndFindSigninAccount(prisma, accountLinks, 60, 'chain-reader@example.com');
    expect([within.hits.map((hit) => hit?.count ?? null), within.account?.id]).toEqual([[1, 1], user.id]);
    const overAccount = await counters.hitChainAndFindSigninAccount(prisma, accountLinks, 60, 'chain-reader@example.com');
    expect([overAccount.hits.map((hit) => hit?.count ?? null), overAccount.account]).toEqual([[2, 2], null]);
  });

  it('audit records: the head moves with each append made through AuditService', async () => {
    const records = new AuditRepository();
    const audit = new AuditService(records);
    expect(await records.last(prisma)).toBeNull();
    await prisma.$transaction((tx) => audit.record(tx, { action: 'test.one' }));
    const { id } = await prisma.$transaction((tx) => audit.record(tx, { action: 'test.two' }));
    const head = await records.last(prisma);
    expect(head?.seq).toBe(2n);
    const rows = await prisma.auditRecord.findMany({ orderBy: { seq: 'asc' } });
    expect(rows.map((row) => row.id)[1]).toBe(id);
    // the database computed seq, at and the hash; the application's verification agrees
    expect(rows[0]!.prevHash).toBe(GENESIS_HASH);
    expect(rows[1]!.prevHash).toBe(rows[0]!.hash);
    expect(
      rows.map((row, index) => chainBreak(index === 0 ? CHAIN_START : { seq: rows[index - 1]!.seq, hash: rows[index - 1]!.hash }, row)),
    ).toEqual([null, null]);
  });
});
