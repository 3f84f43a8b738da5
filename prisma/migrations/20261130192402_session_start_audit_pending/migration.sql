-- session_start() queues its auth.signin record in audit_pending like every other audited change
-- (migration 20261130165000_audit_chain_at_commit): the deferred trigger links it while the
-- statement's transaction commits. It called audit_append() itself, so the chain lock was taken
-- in the middle of the statement; inside a caller's transaction (the MFA step) the function had
-- to be queued as that transaction's last statement for the lock to be held only until the
-- commit. Now it can run anywhere in a transaction, and the lock is held for the commit alone.
-- Same guarantees: the pending row commits or rolls back with the session; seq, `at` and the
-- hash are assigned by audit_append() at commit. The return type stays BIGINT so a replica of
-- the previous build (which reads a seq and ignores it) keeps working during a rolling upgrade;
-- the seq is not known before commit, so it answers 0 (seq starts at 1).
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
  INSERT INTO audit_pending (id, actor_id, actor_type, actor_ip, actor_user_agent, action, target_type, target_id,
      tenant_id, request_id, correlation_id, trace_id, changes, parts)
    VALUES (p_audit->>'id',
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
      p_audit->>'trace_id',
      NULLIF(p_audit->'changes', 'null'::jsonb),
      p_audit_parts);
  RETURN 0;
END;
$$;
