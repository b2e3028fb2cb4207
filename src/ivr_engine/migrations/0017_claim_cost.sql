-- A claim's cost, again independent of the lists (issue 11; store/claims.py).
--
-- 1. The head of one expert's list comes from an index in the list's own order
--    (store/claims.py WAITING_ORDER): the claim reads one entry of it, where it sorted all the
--    due requests of the expert (fine for ten, not for an expert with thousands waiting).
CREATE INDEX requests_waiting_order
    ON requests (expert_id, priority DESC, list_rank, next_attempt_at, id)
    WHERE state = 'waiting';

-- 2. A request of an expert becoming active (a claim: waiting -> ringing_expert; then
--    ringing_client, connected) needs only `engaged` set: the expert leaves the queue index
--    whatever their list holds. The list's due time (`waiting_since`) is not read while the
--    expert is engaged, and every change that can end the engagement (a request leaving the
--    active states, changing expert, deleted) still recomputes both columns under the expert's
--    row lock (expert_queue_refresh, migration 0012). The UPDATE below takes the same row lock,
--    so a refresh running beside it is ordered with it as before.
--    This spares the claim two lookups and a function call inside its statement.
CREATE OR REPLACE FUNCTION requests_queue_sync() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.expert_id IS NOT NULL AND NEW.expert_id = OLD.expert_id
       AND NEW.state IN ('ringing_expert', 'ringing_client', 'connected') THEN
        UPDATE experts SET engaged = true WHERE id = NEW.expert_id AND NOT engaged;
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        PERFORM expert_queue_refresh(OLD.expert_id);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.expert_id IS DISTINCT FROM OLD.expert_id) THEN
        PERFORM expert_queue_refresh(NEW.expert_id);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
