-- The expert's line self-test: the engine calls the expert's registered number, plays a
-- test message and asks for a key. One row per test; `result` is NULL while it runs.
CREATE TABLE line_tests (
    id            bigserial PRIMARY KEY,
    expert_id     bigint NOT NULL REFERENCES experts (id),
    source        text NOT NULL CHECK (source IN ('phone_menu', 'panel', 'inbound')),
    owner         uuid REFERENCES engines (id),      -- the engine running the call
    channel_id    text NOT NULL UNIQUE,              -- chosen before the originate
    dial_string   text NOT NULL DEFAULT '',
    requested_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    answered_at   timestamptz,
    ended_at      timestamptz,
    result        text CHECK (result IN (
                      'passed', 'no_answer', 'busy', 'no_key', 'failed', 'interrupted')),
    hangup_cause  integer,
    key           text,                              -- the key pressed, when passed
    CHECK ((result IS NULL) = (ended_at IS NULL))
);
CREATE INDEX line_tests_expert ON line_tests (expert_id, id DESC);
-- One test at a time per expert, whatever the engines do.
CREATE UNIQUE INDEX line_tests_one_running_per_expert ON line_tests (expert_id)
    WHERE result IS NULL;

-- A line test and a consultation call never ring the same expert at once. Both sides lock
-- the expert's row (FOR NO KEY UPDATE: foreign-key checks still pass) and then look at the
-- other side in a statement of their own, so whichever commits second sees the first.
-- A request becoming active while a test runs fails like the one-active-request index does
-- (unique_violation), which the claim already treats as "someone else got this expert".
CREATE FUNCTION requests_not_during_line_test() RETURNS trigger AS $$
BEGIN
    IF NEW.state IN ('ringing_expert', 'ringing_client', 'connected')
       AND (TG_OP = 'INSERT'
            OR OLD.state NOT IN ('ringing_expert', 'ringing_client', 'connected')) THEN
        PERFORM 1 FROM experts WHERE id = NEW.expert_id FOR NO KEY UPDATE;
        IF EXISTS (SELECT 1 FROM line_tests
                   WHERE expert_id = NEW.expert_id AND result IS NULL) THEN
            RAISE unique_violation
                USING MESSAGE = format('expert %s is taking a line test', NEW.expert_id),
                      CONSTRAINT = 'requests_not_during_line_test';
        END IF;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER requests_not_during_line_test
    BEFORE INSERT OR UPDATE OF state ON requests
    FOR EACH ROW EXECUTE FUNCTION requests_not_during_line_test();

-- A test starting or ending wakes the dispatchers (the expert is busy, then free again) and
-- refreshes the expert's open panel pages, like any change of a request.
CREATE FUNCTION notify_line_test_change() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('ivr_requests', NEW.expert_id::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER line_tests_notify
    AFTER INSERT OR UPDATE OF result, answered_at ON line_tests
    FOR EACH ROW EXECUTE FUNCTION notify_line_test_change();
