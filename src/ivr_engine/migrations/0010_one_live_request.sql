-- One live entry per client in an expert's waiting list, enforced by PostgreSQL: two
-- concurrent "join" requests used to both pass the store's SELECT before either INSERT.
-- The store turns the violation into the same 409 Conflict as the SELECT's.
--
-- Entries left over by that race are ended first: the one being called (if any) or else the
-- oldest is kept, every other one is recorded as lost with the reason 'duplicate'.
WITH ranked AS (
    SELECT id, state,
           row_number() OVER (PARTITION BY expert_id, client_id
                              ORDER BY (state <> 'waiting') DESC, id) AS n
    FROM requests
    WHERE state IN ('waiting', 'ringing_expert', 'ringing_client', 'connected')
), ended AS (
    UPDATE requests r
    SET state = 'lost', end_reason = 'duplicate', ended_at = now(), updated_at = now()
    FROM ranked
    WHERE r.id = ranked.id AND ranked.n > 1
    RETURNING r.id, ranked.state AS from_state
)
INSERT INTO request_events (request_id, from_state, to_state, detail)
SELECT id, from_state, 'lost', 'duplicate' FROM ended;

CREATE UNIQUE INDEX requests_one_live_per_client ON requests (expert_id, client_id)
    WHERE state IN ('waiting', 'ringing_expert', 'ringing_client', 'connected');
