-- Refresh rotation in one round trip (issue 16). Called by SessionRepository.rotateRefreshToken.
--
-- Spends the token whose hash is p_token_hash by compare-and-set (spent_at IS NULL), inserts its
-- successor and touches the session, in the caller's single statement. Outcomes (r_outcome):
--   issued   the compare-and-set won: the successor p_successor_* now exists
--   replay   the token was already spent within p_grace_seconds and its successor is still
--            unused: r_successor_sealed is what the winner sealed (the same refresh token, and
--            once the winner has written it back, its whole response)
--   reuse    any other presentation of a spent token; the caller revokes the session and
--            records the audit event in one transaction
--   refused  r_reason says why (unknown token, session revoked or past its end, account not
--            active, token idle-expired)
-- Session and user columns come back with every outcome but `refused` on an unknown token, so
-- the caller can mint the access token without another query.
--
-- Exactly one successor under any concurrency: the UPDATE waits for a concurrent spender and
-- re-checks spent_at IS NULL on the committed row; the loser re-reads (a new snapshot, as every
-- statement of a VOLATILE plpgsql function in READ COMMITTED) and sees the winner's successor.
CREATE FUNCTION refresh_rotate(
  p_token_hash TEXT,
  p_successor_id TEXT,
  p_successor_hash TEXT,
  p_successor_sealed TEXT,
  p_ttl_seconds INTEGER,
  p_grace_seconds INTEGER
) RETURNS TABLE (
  r_outcome TEXT,
  r_reason TEXT,
  r_token_id TEXT,
  r_session_id TEXT,
  r_amr TEXT[],
  r_session_expires_at TIMESTAMPTZ(3),
  r_user_id TEXT,
  r_email TEXT,
  r_email_verified_at TIMESTAMPTZ(3),
  r_display_name TEXT,
  r_successor_sealed TEXT,
  r_spent_at TIMESTAMPTZ(3)
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_now TIMESTAMPTZ := now();
  v_token RECORD;
  v_successor RECORD;
  v_user_status TEXT;
  v_revoked_at TIMESTAMPTZ;
BEGIN
  SELECT t.id, t.session_id, t.expires_at, t.spent_at, t.successor_id, t.successor_sealed
    INTO v_token FROM refresh_tokens t WHERE t.token_hash = p_token_hash;
  IF NOT FOUND THEN
    r_outcome := 'refused'; r_reason := 'unknown refresh token';
    RETURN NEXT; RETURN;
  END IF;
  SELECT s.id, s.amr, s.expires_at, s.revoked_at, u.id, u.email, u.email_verified_at, u.display_name, u.status
    INTO r_session_id, r_amr, r_session_expires_at, v_revoked_at, r_user_id, r_email, r_email_verified_at, r_display_name, v_user_status
    FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = v_token.session_id;
  IF v_revoked_at IS NOT NULL THEN
    r_outcome := 'refused'; r_reason := 'session revoked';
  ELSIF r_session_expires_at <= v_now THEN
    r_outcome := 'refused'; r_reason := 'session past its absolute lifetime';
  ELSIF v_user_status <> 'active' THEN
    r_outcome := 'refused'; r_reason := 'account not active';
  ELSIF v_token.spent_at IS NULL AND v_token.expires_at <= v_now THEN
    r_outcome := 'refused'; r_reason := 'refresh token idle-expired';
  END IF;
  IF r_outcome IS NOT NULL THEN
    RETURN NEXT; RETURN;
  END IF;

  IF v_token.spent_at IS NULL THEN
    UPDATE refresh_tokens t
      SET spent_at = v_now, successor_id = p_successor_id, successor_sealed = p_successor_sealed
      WHERE t.id = v_token.id AND t.spent_at IS NULL;
    IF FOUND THEN
      INSERT INTO refresh_tokens (id, session_id, token_hash, created_at, expires_at)
        VALUES (p_successor_id, r_session_id, p_successor_hash, v_now,
                LEAST(v_now + make_interval(secs => p_ttl_seconds), r_session_expires_at));
      UPDATE sessions s SET last_used_at = v_now WHERE s.id = r_session_id;
      r_outcome := 'issued'; r_token_id := v_token.id;
      RETURN NEXT; RETURN;
    END IF;
    -- another request spent it first (and has committed): read what it wrote
    SELECT t.id, t.session_id, t.expires_at, t.spent_at, t.successor_id, t.successor_sealed
      INTO v_token FROM refresh_tokens t WHERE t.id = v_token.id;
  END IF;

  r_token_id := v_token.id;
  r_spent_at := v_token.spent_at;
  SELECT t.spent_at INTO v_successor FROM refresh_tokens t WHERE t.id = v_token.successor_id;
  IF v_token.spent_at IS NOT NULL
     AND v_now - v_token.spent_at <= make_interval(secs => p_grace_seconds)
     AND FOUND AND v_successor.spent_at IS NULL
     AND v_token.successor_sealed IS NOT NULL THEN
    r_outcome := 'replay'; r_successor_sealed := v_token.successor_sealed;
  ELSE
    r_outcome := 'reuse';
  END IF;
  RETURN NEXT;
END;
$$;
