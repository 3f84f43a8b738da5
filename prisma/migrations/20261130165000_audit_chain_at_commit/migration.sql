-- The chain link at COMMIT, not one client round trip before it (issue 16). Until now the
-- application's last statement was audit_append(), which takes the chain lock; the lock was held
-- while the answer went back to the application, its event loop came round to sending COMMIT, and
-- the commit's WAL flush ran. Every audited commit waited for the previous one's round trip and
-- flush. Now an audited change inserts its record into audit_pending (a plain insert, any time in
-- the transaction) and a deferred constraint trigger appends it with audit_append() while
-- PostgreSQL commits: the lock is taken inside the COMMIT itself, so it is held for the append,
-- the commit record and its flush, never for a network round trip or application work.
-- Same guarantees: the trigger runs in the change's transaction (a rolled-back transaction never
-- runs it, a failing trigger fails the commit), seq and hash come from audit_append() under the
-- lock as before, and no audit record is ever updated. The pending row is deleted in the same
-- transaction, so no pending row outlives its transaction (UNLOGGED: nothing of it needs the WAL).
CREATE UNLOGGED TABLE "audit_pending" (
    "id" TEXT NOT NULL,
    "actor_id" TEXT,
    "actor_type" TEXT,
    "actor_ip" TEXT,
    "actor_user_agent" TEXT,
    "action" TEXT NOT NULL,
    "target_type" TEXT,
    "target_id" TEXT,
    "tenant_id" TEXT,
    "request_id" TEXT,
    "correlation_id" TEXT,
    "trace_id" TEXT,
    "changes" JSONB,
    -- the record's canonical JSON around at, prev_hash and seq (audit_append()'s p_parts)
    "parts" TEXT[] NOT NULL,
    CONSTRAINT "audit_pending_pkey" PRIMARY KEY ("id")
);
-- every row is deleted by the transaction that inserted it: vacuum the dead ones each round
ALTER TABLE "audit_pending" SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);

CREATE FUNCTION audit_pending_append() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM audit_append(NEW.id, NEW.actor_id, NEW.actor_type, NEW.actor_ip, NEW.actor_user_agent, NEW.action,
                       NEW.target_type, NEW.target_id, NEW.tenant_id, NEW.request_id, NEW.correlation_id,
                       NEW.trace_id, NEW.changes, NEW.parts);
  DELETE FROM audit_pending WHERE id = NEW.id;
  RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER audit_pending_append
  AFTER INSERT ON "audit_pending"
  DEFERRABLE INITIALLY DEFERRED
  FOR EACH ROW EXECUTE FUNCTION audit_pending_append();
