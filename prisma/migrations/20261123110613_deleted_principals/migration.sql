-- CreateTable
CREATE TABLE "deleted_principals" (
    "principal_id" TEXT NOT NULL,
    "deleted_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "deleted_principals_pkey" PRIMARY KEY ("principal_id")
);

-- CreateIndex
CREATE INDEX "deleted_principals_deleted_at_idx" ON "deleted_principals"("deleted_at");
