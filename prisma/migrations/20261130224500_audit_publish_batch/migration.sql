-- The audit publisher's batch in one function (docs/decisions.md "Audit publisher back on
-- Prisma's transaction"): the pass sent BEGIN, SET LOCAL, the try-lock and the batch query as
-- one simple-query message, so PostgreSQL planned the batch query afresh on every pass (about
-- 0.15 ms, more than running it), and a process that did not get the lock still read the batch
-- another process was publishing. Here the plan is cached for the session (PL/pgSQL), the batch
-- is read only under the lock, and the idle limit is set in the same call.
-- In the caller's transaction: sets idle_in_transaction_session_timeout to p_idle_ms for the
-- rest of it (SET LOCAL), takes the publisher lock (0x61756470, "audp") for the rest of it or
-- returns nothing at once when another process holds it, and returns the next p_limit records
-- past the publish cursor in seq order. VOLATILE: in READ COMMITTED the batch query takes its
-- snapshot after the lock is taken (each statement of a volatile function takes its own), so it
-- sees the cursor the previous holder committed.
CREATE FUNCTION audit_publish_batch(p_limit INTEGER, p_idle_ms INTEGER)
RETURNS SETOF audit_records LANGUAGE plpgsql VOLATILE
-- one generic plan per session from the first call: with p_limit a parameter, PL/pgSQL would
-- otherwise plan each session's first five calls afresh, and the publisher's passes spread over
-- the pool's connections (pg_stat_statements: 119 calls, 119 plans)
SET plan_cache_mode = force_generic_plan AS $$
BEGIN
  PERFORM set_config('idle_in_transaction_session_timeout', p_idle_ms::text || 'ms', true);
  IF NOT pg_try_advisory_xact_lock(1635083376) THEN
    RETURN;
  END IF;
  RETURN QUERY
    SELECT r.* FROM audit_records r
    WHERE r.seq > COALESCE((SELECT s.value::bigint FROM system_settings s WHERE s.key = 'audit_publish_cursor'), 0)
    ORDER BY r.seq
    LIMIT p_limit;
END;
$$;
