-- The dispatcher and the email sender are woken by PostgreSQL, not by the code path that
-- made the change: a solicit (next_attempt_at moves, the state does not) notifies
-- 'ivr_requests' too, and every queued email notifies 'ivr_outbox'. Engines sharing the
-- database wake each other the same way.
DROP TRIGGER requests_notify ON requests;
CREATE TRIGGER requests_notify
    AFTER INSERT OR UPDATE OF state, next_attempt_at ON requests
    FOR EACH ROW EXECUTE FUNCTION notify_request_change();

CREATE FUNCTION notify_outbox() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('ivr_outbox', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER outbox_notify
    AFTER INSERT ON outbox_emails
    FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox();
