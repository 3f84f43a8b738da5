-- CreateTable
CREATE TABLE "tenants" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "tenants_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "rights" (
    "key" TEXT NOT NULL,
    "description" TEXT,
    "built_in" BOOLEAN NOT NULL DEFAULT false,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "rights_pkey" PRIMARY KEY ("key")
);

-- CreateTable
CREATE TABLE "roles" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "tenant_id" TEXT,
    "description" TEXT,
    "built_in" BOOLEAN NOT NULL DEFAULT false,
    "grants" TEXT[],
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "roles_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "assignments" (
    "id" TEXT NOT NULL,
    "principal_id" TEXT NOT NULL,
    "principal_type" TEXT NOT NULL,
    "tenant_id" TEXT,
    "role_id" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "assignments_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "service_accounts" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "tenant_id" TEXT,
    "client_id" TEXT NOT NULL,
    "secret_hash" TEXT NOT NULL,
    "previous_secret_hash" TEXT,
    "previous_expires_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "service_accounts_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "roles_tenant_id_idx" ON "roles"("tenant_id");

-- CreateIndex
CREATE INDEX "assignments_principal_id_idx" ON "assignments"("principal_id");

-- CreateIndex
CREATE INDEX "assignments_tenant_id_idx" ON "assignments"("tenant_id");

-- CreateIndex
CREATE UNIQUE INDEX "service_accounts_client_id_key" ON "service_accounts"("client_id");

-- CreateIndex
CREATE INDEX "service_accounts_tenant_id_idx" ON "service_accounts"("tenant_id");

-- AddForeignKey
ALTER TABLE "assignments" ADD CONSTRAINT "assignments_role_id_fkey" FOREIGN KEY ("role_id") REFERENCES "roles"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Not expressible in the Prisma schema: uniqueness where a null tenant means platform scope,
-- and tenant-owned rows going away with their tenant.
CREATE UNIQUE INDEX "assignments_principal_scope_role_key" ON "assignments"("principal_id", "tenant_id", "role_id") NULLS NOT DISTINCT;
CREATE UNIQUE INDEX "roles_tenant_name_key" ON "roles"("tenant_id", "name") NULLS NOT DISTINCT;
ALTER TABLE "assignments" ADD CONSTRAINT "assignments_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE;
ALTER TABLE "roles" ADD CONSTRAINT "roles_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE;

-- Built-in rights (CONTRACT §5).
INSERT INTO "rights" ("key", "description", "built_in") VALUES
  ('commands.submit', 'Submit commands to aggregates', true),
  ('queries.run', 'Run projection queries', true),
  ('streams.subscribe', 'Subscribe to projection streams', true),
  ('runner.admin', 'Administer the runner', true),
  ('iam.users.read', 'Read users', true),
  ('iam.users.write', 'Create, change and disable users', true),
  ('iam.roles.read', 'Read roles', true),
  ('iam.roles.write', 'Create and change roles', true),
  ('iam.assignments.read', 'Read role assignments', true),
  ('iam.assignments.write', 'Assign and unassign roles', true),
  ('iam.service_accounts.write', 'Manage service accounts', true),
  ('iam.sessions.revoke', 'Revoke sessions', true),
  ('iam.mfa.reset', 'Reset MFA', true),
  ('iam.audit.read', 'Read the audit trail', true),
  ('platform.tenants.write', 'Create and change tenants', true),
  ('platform.rights.write', 'Define rights', true),
  ('platform.routing.read', 'Read the routing table', true),
  ('platform.routing.write', 'Reload the routing table', true),
  ('platform.keys.rotate', 'Rotate signing keys', true),
  ('platform.rebalancing', 'Rebalance tenants across shards', true);

-- Built-in roles; their ids are their names. "*" grants every right.
INSERT INTO "roles" ("id", "name", "tenant_id", "description", "built_in", "grants", "updated_at") VALUES
  ('platform_admin', 'platform_admin', NULL, 'Everything, everywhere (platform scope)', true, ARRAY['*'], CURRENT_TIMESTAMP),
  ('tenant_admin', 'tenant_admin', NULL, 'IAM inside its tenant and all tenant actions', true,
    ARRAY['iam.users.read', 'iam.users.write', 'iam.roles.read', 'iam.roles.write', 'iam.assignments.read', 'iam.assignments.write',
          'iam.service_accounts.write', 'iam.sessions.revoke', 'iam.mfa.reset', 'iam.audit.read',
          'commands.submit:*', 'queries.run:*', 'streams.subscribe:*'], CURRENT_TIMESTAMP),
  ('tenant_member', 'tenant_member', NULL, 'Commands, queries and subscriptions', true,
    ARRAY['commands.submit:*', 'queries.run:*', 'streams.subscribe:*'], CURRENT_TIMESTAMP),
  ('tenant_viewer', 'tenant_viewer', NULL, 'Queries and subscriptions', true,
    ARRAY['queries.run:*', 'streams.subscribe:*'], CURRENT_TIMESTAMP);

-- The interim bootstrap-admin markers become platform_admin assignments.
INSERT INTO "assignments" ("id", "principal_id", "principal_type", "tenant_id", "role_id")
  SELECT gen_random_uuid()::text, substring("key" FROM 16), 'user', NULL, 'platform_admin'
  FROM "system_settings" WHERE "key" LIKE 'platform_admin:%';
DELETE FROM "system_settings" WHERE "key" LIKE 'platform_admin:%';
