-- CreateTable
CREATE TABLE "rebalancing_plans" (
    "id" TEXT NOT NULL,
    "service_kind" TEXT NOT NULL,
    "tenant_id" TEXT NOT NULL,
    "from_shard" TEXT NOT NULL,
    "from_entry" TEXT,
    "target_shard" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "placement_revision" BIGINT NOT NULL,
    "checks" JSONB NOT NULL,
    "persisted" BOOLEAN NOT NULL,
    "created_by" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "applied_at" TIMESTAMPTZ(3),
    "rolled_back_at" TIMESTAMPTZ(3),

    CONSTRAINT "rebalancing_plans_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "rebalancing_plans_service_kind_tenant_id_idx" ON "rebalancing_plans"("service_kind", "tenant_id");

-- platform.rebalancing and platform.routing.write exist since the rbac migration; the latter now
-- also covers PUT /admin/routing/{kind}/{part}.
UPDATE "rights" SET "description" = 'Reload and change the routing table' WHERE "key" = 'platform.routing.write';
