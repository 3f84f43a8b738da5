-- Audit append as one statement at the end of the change's transaction (issue 16), called by
-- AuditRepository.appendChained. The chain lock (the advisory lock AuditService has always used)
-- is taken here, so it is held from this statement to the commit right after it: microseconds,
-- not the whole transaction. Under the lock: the head (seq, hash), `at` (milliseconds, so it
-- never goes backwards along seq), then the hash over the record's canonical JSON, which the
-- caller hands over in four pieces around the three values only known here:
--   p_parts[1] || at || p_parts[2] || prev_hash || p_parts[3] || seq || p_parts[4]
-- (canonical JSON sorts keys: at < prev_hash < seq). GET /admin/audit/verify recomputes it in
-- the application from the stored row, so both sides must agree byte for byte.
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
                             target_id, tenant_id, request_id, correlation_id, changes, prev_hash, hash)
  VALUES (v_seq, p_id, v_at, p_actor_id, p_actor_type, p_actor_ip, p_actor_user_agent, p_action, p_target_type,
          p_target_id, p_tenant_id, p_request_id, p_correlation_id, p_changes, v_prev,
          encode(sha256(convert_to(
            p_parts[1] || to_char(v_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || p_parts[2] || v_prev ||
            p_parts[3] || v_seq::text || p_parts[4], 'UTF8')), 'hex'));
  RETURN v_seq;
END;
$$;
