-- Category requests: a client asks for "a cartomancy expert" rather than for one expert. The
-- request is a row of `requests` with a category and no expert until an expert wins it; it is
-- offered to several experts at once, one row of `offers` per expert rung.

ALTER TABLE requests ALTER COLUMN expert_id DROP NOT NULL;
ALTER TABLE requests
    ADD COLUMN category        text,  -- set: a category request (expert_id NULL until won)
    ADD COLUMN expert_language text,  -- a category request for experts of this language only
    ADD CONSTRAINT requests_expert_or_category CHECK (expert_id IS NOT NULL OR category IS NOT NULL);
CREATE INDEX requests_category_waiting ON requests (category, next_attempt_at, id)
    WHERE state = 'waiting' AND expert_id IS NULL;
-- One live category request per client and category (a second is refused with 409).
CREATE UNIQUE INDEX requests_one_live_per_client_category ON requests (category, client_id)
    WHERE category IS NOT NULL AND state IN ('waiting', 'ringing_expert', 'ringing_client', 'connected');

-- One row per expert rung for a category request. `state`:
--   ringing   the expert's phone is engaged by the offer (ringing, or hearing it)
--   won       the expert pressed 1 first: requests.expert_id is theirs
--   taken     another expert won; this one heard "already taken" and was hung up
--   refused   the expert pressed 3 (never offered this request again)
--   no_answer no answer, busy, no key, or hung up during the offer
--   released  the offer ended without a key from this expert (the client left, the engine
--             stopped, the request went back to waiting or ended)
--   handed_back  the expert won, then gave the request back (never offered it again)
CREATE TABLE offers (
    id         bigserial PRIMARY KEY,
    request_id bigint NOT NULL REFERENCES requests (id),
    expert_id  bigint NOT NULL REFERENCES experts (id),
    round      integer NOT NULL,  -- requests.attempts when it was offered
    state      text NOT NULL DEFAULT 'ringing' CHECK (state IN (
                   'ringing', 'won', 'taken', 'refused', 'no_answer', 'released',
                   'handed_back')),
    reason     text NOT NULL DEFAULT '',
    offered_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    ended_at   timestamptz
);
CREATE INDEX offers_request ON offers (request_id, id);
-- An expert is offered one thing at a time, whatever the engines do.
CREATE UNIQUE INDEX offers_one_ringing_per_expert ON offers (expert_id) WHERE state = 'ringing';

-- An expert's phone is engaged by an active request of theirs OR a ringing offer. The two
-- live in two tables, so no single index can say "never both": each side takes the same
-- per-expert transaction lock, then looks at the other side with a fresh snapshot (plpgsql
-- statements of a volatile function see what committed before the lock was granted). The
-- loser gets unique_violation, which the claims already treat as "someone was first".
CREATE FUNCTION expert_engaged_lock(expert bigint) RETURNS void AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(15, expert::integer);
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION offers_guard() RETURNS trigger AS $$
BEGIN
    PERFORM expert_engaged_lock(NEW.expert_id);
    IF EXISTS (SELECT 1 FROM requests WHERE expert_id = NEW.expert_id
               AND state IN ('ringing_expert', 'ringing_client', 'connected')) THEN
        RAISE EXCEPTION 'expert % is engaged by a request', NEW.expert_id
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'offers_expert_engaged';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER offers_guard BEFORE INSERT ON offers
    FOR EACH ROW EXECUTE FUNCTION offers_guard();

CREATE FUNCTION requests_offer_guard() RETURNS trigger AS $$
BEGIN
    PERFORM expert_engaged_lock(NEW.expert_id);
    IF EXISTS (SELECT 1 FROM offers WHERE expert_id = NEW.expert_id AND state = 'ringing'
               AND request_id <> NEW.id) THEN
        RAISE EXCEPTION 'expert % is being offered a category request', NEW.expert_id
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'requests_expert_offered';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER requests_offer_guard BEFORE INSERT OR UPDATE OF state, expert_id ON requests
    FOR EACH ROW
    WHEN (NEW.expert_id IS NOT NULL
          AND NEW.state IN ('ringing_expert', 'ringing_client', 'connected'))
    EXECUTE FUNCTION requests_offer_guard();

-- Offers still ringing end when their request goes back to waiting or ends (a crashed
-- engine's offers included): the experts are free again. Not at the bridge: an expert who
-- lost the race may still be hearing "already taken" then, and their flow ends the offer
-- once their phone is hung up.
CREATE FUNCTION release_offers() RETURNS trigger AS $$
BEGIN
    -- An expert still on the line when a request someone else won has ended lost the race.
    UPDATE offers SET state = CASE WHEN NEW.expert_id IS NOT NULL THEN 'taken' ELSE 'released' END,
                      ended_at = clock_timestamp(), reason = 'request ' || NEW.state
    WHERE request_id = NEW.id AND state = 'ringing';
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER requests_release_offers AFTER UPDATE OF state ON requests
    FOR EACH ROW
    WHEN (NEW.category IS NOT NULL
          AND NEW.state NOT IN ('ringing_expert', 'ringing_client', 'connected'))
    EXECUTE FUNCTION release_offers();

-- An offer ending frees its expert: wake the dispatchers (and the expert's live pages).
CREATE FUNCTION notify_offer_change() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('ivr_requests', NEW.expert_id::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER offers_notify AFTER INSERT OR UPDATE OF state ON offers
    FOR EACH ROW EXECUTE FUNCTION notify_offer_change();

-- The claim queue of migration 0012 refreshes an expert when a request's expert changes;
-- a category request's expert goes from NULL to the winner (and back on a hand-back), and
-- NULL <> x is not true: compare with IS DISTINCT FROM.
CREATE OR REPLACE FUNCTION requests_queue_sync() RETURNS trigger AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM expert_queue_refresh(OLD.expert_id);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.expert_id IS DISTINCT FROM OLD.expert_id) THEN
        PERFORM expert_queue_refresh(NEW.expert_id);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
