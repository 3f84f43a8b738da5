-- AlterTable
ALTER TABLE "email_tokens" ADD COLUMN     "new_email" TEXT;

-- CONTRACT §12: the built-in right a service account holds at platform scope to call
-- POST /v1/auth/introspect. platform_admin ("*") has it already.
INSERT INTO "rights" ("key", "description", "built_in") VALUES
  ('iam.tokens.introspect', 'Introspect access tokens (RFC 7662)', true)
ON CONFLICT ("key") DO NOTHING;
