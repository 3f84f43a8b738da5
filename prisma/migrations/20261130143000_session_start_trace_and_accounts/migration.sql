-- 20261130141328_audit_trace_id and 20261130141336_account_lockouts both replaced session_start()
-- (landed in parallel); the later one dropped the trace_id. This is both: the record's trace_id
-- passed to audit_append(), and counters cleared by key OR by account (a success clears every
-- counter of the account, per client IP and from every address, CONTRACT §4 wave 2).
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
    p_audit->>'trace_id',
    NULLIF(p_audit->'changes', 'null'::jsonb),
    p_audit_parts);
END;
$$;
