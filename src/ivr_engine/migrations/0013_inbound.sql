-- Clients call in (issue 12): service numbers, callers holding on the line, new clients first,
-- missed calls called back.

-- The place a request takes in its expert's list, after `priority` and before its due time:
-- 0 for everyone under the `fifo` policy; under `new_first`, 0 for a client with no earlier
-- consultation and 1 for a returning client. Computed once, when the request is made.
ALTER TABLE requests ADD COLUMN list_rank smallint NOT NULL DEFAULT 0 CHECK (list_rank >= 0);
-- A caller holding on the line for this request: their channel (in the ARI app) and the
-- engine whose call task holds it. NULL: the client waits to be called back.
ALTER TABLE requests ADD COLUMN holding_channel text;
ALTER TABLE requests ADD COLUMN holding_engine uuid REFERENCES engines (id);
-- A missed call (a caller who hung up while holding, or whose call could not be taken):
-- when it was missed and the promise to call back by then (IVR_MISSED_CALLBACK_MINUTES).
ALTER TABLE requests ADD COLUMN missed_at timestamptz;
ALTER TABLE requests ADD COLUMN callback_by timestamptz;
CREATE UNIQUE INDEX requests_holding_channel ON requests (holding_channel)
    WHERE holding_channel IS NOT NULL;

-- The caller's own channel becomes the client leg of the consultation: no call is placed.
ALTER TABLE call_attempts DROP CONSTRAINT call_attempts_purpose_check;
ALTER TABLE call_attempts ADD CONSTRAINT call_attempts_purpose_check
    CHECK (purpose IN ('offer', 'connect', 'notify_refused', 'inbound'));

-- Every call to a service number, for the admin figures: calls in, answered, abandoned,
-- average speed of answer, withheld numbers.
CREATE TABLE inbound_calls (
    id          bigserial PRIMARY KEY,
    channel_id  text NOT NULL UNIQUE,
    dialled     text NOT NULL,
    caller      text NOT NULL DEFAULT '',     -- as dialable, '' when withheld or not callable
    withheld    boolean NOT NULL DEFAULT false,
    expert_id   bigint REFERENCES experts (id),
    request_id  bigint REFERENCES requests (id),
    started_at  timestamptz NOT NULL DEFAULT now(),
    bridged_at  timestamptz,
    ended_at    timestamptz,
    -- 'open' while the call lasts, then: 'bridged', 'callback' (the caller chose it),
    -- 'abandoned' (hung up holding: a missed call), 'closed' (expert closed, callback offered),
    -- 'declined' (told goodbye: unknown code, nobody available, withheld, already in line),
    -- 'hung_up' (hung up in the menu), 'interrupted' (engine gone: a missed call)
    outcome     text NOT NULL DEFAULT 'open'
);
CREATE INDEX inbound_calls_started ON inbound_calls (started_at);

-- A caller starting or stopping to hold changes the live pages (and frees a callback for any
-- engine's dispatcher): notify as a state move does (function of migration 0006).
CREATE TRIGGER requests_notify_holding
    AFTER UPDATE OF holding_channel ON requests
    FOR EACH ROW WHEN (OLD.holding_channel IS DISTINCT FROM NEW.holding_channel)
    EXECUTE FUNCTION notify_request_change();
