-- rate_limit_chain(): the limiter's counters in one call, so every caller can send it as one
-- prepared statement (it was a CTE of variable length built per call and sent through Prisma).
-- Counts one hit on p_keys[1] and, only while each counter is within its limit (p_limits), one
-- on the next: the client IP, then the account from that IP, then the account from everywhere
-- (CONTRACT §4 wave 2). Each counter is the same atomic fixed-window upsert as before: a window
-- that is over starts again with this hit. Returns the counts and the seconds left in each
-- counter's window for the counters it hit, in order (fewer than p_keys when the chain stopped).
CREATE FUNCTION rate_limit_chain(
  p_keys TEXT[],
  p_accounts TEXT[],
  p_limits INT[],
  p_window_seconds INT,
  OUT counts INT[],
  OUT retry_after INT[]
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_window INTERVAL := make_interval(secs => p_window_seconds);
  v_count INT;
  v_retry INT;
BEGIN
  counts := '{}';
  retry_after := '{}';
  FOR i IN 1 .. coalesce(cardinality(p_keys), 0) LOOP
    EXIT WHEN i > 1 AND counts[i - 1] > p_limits[i - 1];
    INSERT INTO rate_limit_counters AS c (key, account, window_start, count)
      VALUES (p_keys[i], p_accounts[i], now(), 1)
    ON CONFLICT (key) DO UPDATE SET
      count = CASE WHEN c.window_start <= now() - v_window THEN 1 ELSE c.count + 1 END,
      window_start = CASE WHEN c.window_start <= now() - v_window THEN now() ELSE c.window_start END,
      account = COALESCE(c.account, EXCLUDED.account)
    RETURNING c.count, GREATEST(1, CEIL(EXTRACT(EPOCH FROM (c.window_start + v_window - now()))))::int
      INTO v_count, v_retry;
    counts := counts || v_count;
    retry_after := retry_after || v_retry;
  END LOOP;
END;
$$;
