-- AlterTable
ALTER TABLE "audit_records" ADD COLUMN     "trace_id" TEXT;

-- audit_append() gains p_trace_id (issue 11): the W3C trace id of the request that wrote the
-- record. The hash covers it when present; when NULL the caller leaves it out of the canonical
-- JSON, so records without one (every record written before this column) hash exactly as before
-- and the chain verifies across the change (docs/decisions.md "trace_id in audit records").
-- The hash is computed as before, from the caller's pieces around at, prev_hash and seq
-- (trace_id sorts after seq, so it lives in p_parts[4]).
CREATE FUNCTION audit_append(
  p_id TEXT,
  p_actor_id TEXT,
  p_actor_type TEXT,
  p_actor_ip TEXT,
  p_actor_user_agent TEXT,
  p_action TEXT,
  p_target_type TEXT,
  p_target_id TEXT,
  p_tenant_id TEXT,
  p_request_id TEXT,
  p_correlation_id TEXT,
  p_trace_id TEXT,
  p_changes JSONB,
  p_parts TEXT[]
) RETURNS BIGINT LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_seq BIGINT;
  v_prev TEXT;
  v_at TIMESTAMPTZ(3);
BEGIN
  IF array_length(p_parts, 1) IS DISTINCT FROM 4 THEN
    RAISE EXCEPTION 'audit_append: p_parts must have 4 elements';
  END IF;
  -- 0x61756474 ("audt"), as before
  PERFORM pg_advisory_xact_lock(1635083380);
  SELECT r.seq, r.hash INTO v_seq, v_prev FROM audit_records r ORDER BY r.seq DESC LIMIT 1;
  v_seq := COALESCE(v_seq, 0) + 1;
  v_prev := COALESCE(v_prev, repeat('0', 64));
  v_at := date_trunc('milliseconds', clock_timestamp());
  INSERT INTO audit_records (seq, id, at, actor_id, actor_type, actor_ip, actor_user_agent, action, target_type,
                             target_id, tenant_id, request_id, correlation_id, trace_id, changes, prev_hash, hash)
  VALUES (v_seq, p_id, v_at, p_actor_id, p_actor_type, p_actor_ip, p_actor_user_agent, p_action, p_target_type,
          p_target_id, p_tenant_id, p_request_id, p_correlation_id, p_trace_id, p_changes, v_prev,
          encode(sha256(convert_to(
            p_parts[1] || to_char(v_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || p_parts[2] || v_prev ||
            p_parts[3] || v_seq::text || p_parts[4], 'UTF8')), 'hex'));
  RETURN v_seq;
END;
$$;

-- The previous signature stays, for a replica still running the previous release during a
-- rolling update and for any function written against it. It takes the trace id from the pieces,
-- so the stored column always matches what was hashed: trace_id is the last key of the canonical
-- JSON, so p_parts[4] ends with ,"trace_id":"<32 hex>"} exactly when the record has one (a quote
-- inside a string value is escaped as \", so no value can imitate that key). Old pieces have none: NULL.
CREATE OR REPLACE FUNCTION audit_append(
  p_id TEXT,
  p_actor_id TEXT,
  p_actor_type TEXT,
  p_actor_ip TEXT,
  p_actor_user_agent TEXT,
  p_action TEXT,
  p_target_type TEXT,
  p_target_id TEXT,
  p_tenant_id TEXT,
  p_request_id TEXT,
  p_correlation_id TEXT,
  p_changes JSONB,
  p_parts TEXT[]
) RETURNS BIGINT LANGUAGE sql VOLATILE AS $$
  SELECT audit_append(p_id, p_actor_id, p_actor_type, p_actor_ip, p_actor_user_agent, p_action, p_target_type,
                      p_target_id, p_tenant_id, p_request_id, p_correlation_id,
                      substring(p_parts[4] from ',"trace_id":"([0-9a-f]{32})"}$'), p_changes, p_parts);
$$;

-- session_start() (same signature) passes the record's trace_id on; p_audit from the previous
-- release has none, which reads as NULL.
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
    DELETE FROM rate_limit_counters WHERE key = ANY (p_clear_counter_keys);
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
