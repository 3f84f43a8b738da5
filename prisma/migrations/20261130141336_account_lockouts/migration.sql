-- AlterTable
ALTER TABLE "totp_credentials" ADD COLUMN     "failed_attempts" INTEGER NOT NULL DEFAULT 0;

-- AlterTable
ALTER TABLE "rate_limit_counters" ADD COLUMN     "account" TEXT;

-- CreateIndex
CREATE INDEX "rate_limit_counters_account_idx" ON "rate_limit_counters"("account");

-- Sign-in counters existing before this migration belong to the account in their key.
UPDATE "rate_limit_counters" SET "account" = substr("key", 9) WHERE "key" LIKE 'account:signin:%';

-- CONTRACT §4 wave 2: a successful sign-in clears every counter of the account (per account and
-- per (account, client IP)). session_start() now clears counters whose key OR whose account is
-- in p_clear_counter_keys (SessionRepository passes both); otherwise as in
-- 20261130121500_session_start.
CREATE OR REPLACE FUNCTION session_start(
  p_session_id TEXT,
  p_user_id TEXT,
  p_amr TEXT[],
  p_ip TEXT,
  p_user_agent TEXT,
  p_expires_at TIMESTAMPTZ,
  p_refresh_id TEXT,
  p_refresh_hash TEXT,
  p_refresh_expires_at TIMESTAMPTZ,
  p_clear_counter_keys TEXT[],
  p_audit JSONB,
  p_audit_parts TEXT[]
) RETURNS BIGINT LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_now TIMESTAMPTZ := now();
BEGIN
  IF cardinality(p_clear_counter_keys) > 0 THEN
    DELETE FROM rate_limit_counters WHERE key = ANY (p_clear_counter_keys) OR account = ANY (p_clear_counter_keys);
  END IF;
  INSERT INTO sessions (id, user_id, amr, ip, user_agent, created_at, last_used_at, expires_at)
    VALUES (p_session_id, p_user_id, p_amr, p_ip, p_user_agent, v_now, v_now, p_expires_at);
  INSERT INTO refresh_tokens (id, session_id, token_hash, created_at, expires_at)
    VALUES (p_refresh_id, p_session_id, p_refresh_hash, v_now, p_refresh_expires_at);
  RETURN audit_append(
    p_audit->>'id',
    p_audit->'actor'->>'principal_id',
    p_audit->'actor'->>'principal_type',
    p_audit->'actor'->>'ip',
    p_audit->'actor'->>'user_agent',
    p_audit->>'action',
    p_audit->'target'->>'type',
    p_audit->'target'->>'id',
    p_audit->>'tenant_id',
    p_audit->>'request_id',
    p_audit->>'correlation_id',
    NULLIF(p_audit->'changes', 'null'::jsonb),
    p_audit_parts);
END;
$$;
