-- Claims cost the same with 100 waiting requests as with 100,000 (issue 11).
--
-- A claim used to sort every waiting request whose expert was free; now each expert row
-- says whether the expert is on a call (`engaged`) and when the earliest of their waiting
-- requests is due (`waiting_since`, and `queue_due` which adds a pause and a missed-call
-- mark). The claim takes the few free experts due first from one small index, then the
-- best due request of each from that expert's own list (store/claims.py).
--
-- Both columns are kept by a trigger on requests, in the same transaction as the change.
-- The trigger locks the expert's row before it reads, so two transactions changing the
-- same expert's requests refresh it one after the other, the second seeing the first's
-- work (READ COMMITTED: each statement of the function has a fresh snapshot).
ALTER TABLE experts
    ADD COLUMN engaged       boolean NOT NULL DEFAULT false,
    ADD COLUMN waiting_since timestamptz,
    ADD COLUMN queue_due     timestamptz GENERATED ALWAYS AS (
        CASE WHEN waiting_since IS NOT NULL
             THEN greatest(waiting_since, unreachable_until, paused_until) END) STORED;

CREATE FUNCTION expert_queue_refresh(expert bigint) RETURNS void AS $$
DECLARE
    busy  boolean;
    since timestamptz;
BEGIN
    PERFORM 1 FROM experts WHERE id = expert FOR NO KEY UPDATE;
    SELECT EXISTS (SELECT 1 FROM requests a WHERE a.expert_id = expert
                   AND a.state IN ('ringing_expert', 'ringing_client', 'connected')),
           (SELECT min(w.next_attempt_at) FROM requests w
            WHERE w.expert_id = expert AND w.state = 'waiting')
      INTO busy, since;
    UPDATE experts SET engaged = busy, waiting_since = since
     WHERE id = expert AND (engaged, waiting_since) IS DISTINCT FROM (busy, since);
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION requests_queue_sync() RETURNS trigger AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM expert_queue_refresh(OLD.expert_id);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.expert_id <> OLD.expert_id) THEN
        PERFORM expert_queue_refresh(NEW.expert_id);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER requests_queue
    AFTER INSERT OR DELETE OR UPDATE OF state, next_attempt_at, expert_id ON requests
    FOR EACH ROW EXECUTE FUNCTION requests_queue_sync();

UPDATE experts e SET
    engaged = EXISTS (SELECT 1 FROM requests a WHERE a.expert_id = e.id
                      AND a.state IN ('ringing_expert', 'ringing_client', 'connected')),
    waiting_since = (SELECT min(w.next_attempt_at) FROM requests w
                     WHERE w.expert_id = e.id AND w.state = 'waiting');

-- The free experts with a waiting list, the one due first first.
CREATE INDEX experts_queue ON experts (queue_due, id)
    WHERE channel_phone AND NOT engaged AND queue_due IS NOT NULL;
-- One expert's due requests come from requests_waiting (expert_id, next_attempt_at, id).
