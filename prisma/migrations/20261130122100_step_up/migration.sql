-- AlterTable
ALTER TABLE "sessions" ADD COLUMN     "authenticated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP;


-- Sessions that exist already were last authenticated when they started.
UPDATE "sessions" SET "authenticated_at" = "created_at";

-- CONTRACT §6 step-up: service accounts holding this right are exempt from step-up.
INSERT INTO "rights" ("key", "description", "built_in") VALUES
  ('iam.step_up_exempt', 'Service accounts: exempt from admin step-up (second factor, recent sign-in)', true)
ON CONFLICT ("key") DO NOTHING;
