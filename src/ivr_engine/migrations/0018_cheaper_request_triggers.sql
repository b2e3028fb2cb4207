-- PostgreSQL's CPU per consultation (issue 11): the same rules on `requests`, fewer trigger
-- calls. A consultation moves its request five times (created, claimed, ringing the client,
-- connected, completed); two of those moves go from one active state to another, which can
-- change neither what the guards check, nor the claim queue, nor what a dispatcher may
-- claim. Every trigger here fires exactly when its function did something before; the
-- functions are unchanged. BEFORE (and AFTER) triggers of a table fire in the order of their
-- names: the new names keep the order the old triggers had.

-- (1) The line-test guard (0014) looks for a running test only when a request becomes
--     active; its function already returned at once otherwise: that test moves into WHEN,
--     so PL/pgSQL is not entered at all for the other moves.
DROP TRIGGER requests_not_during_line_test ON requests;
CREATE TRIGGER requests_not_during_line_test
    BEFORE INSERT ON requests
    FOR EACH ROW
    WHEN (NEW.state IN ('ringing_expert', 'ringing_client', 'connected'))
    EXECUTE FUNCTION requests_not_during_line_test();
CREATE TRIGGER requests_not_during_line_test_update
    BEFORE UPDATE OF state ON requests
    FOR EACH ROW
    WHEN (NEW.state IN ('ringing_expert', 'ringing_client', 'connected')
          AND OLD.state NOT IN ('ringing_expert', 'ringing_client', 'connected'))
    EXECUTE FUNCTION requests_not_during_line_test();

-- (2) The offer guard (0015) checks, under the expert's lock, that no offer rings an expert
--     whose request becomes active. A request already active for that expert passed it
--     when it became active, and no offer can start for the expert while it stays active
--     (offers_guard checks the other way under the same lock): it runs when the request
--     becomes active or changes expert (a category request's winner), not on every move.
DROP TRIGGER requests_offer_guard ON requests;
CREATE TRIGGER requests_offer_guard
    BEFORE INSERT ON requests
    FOR EACH ROW
    WHEN (NEW.expert_id IS NOT NULL
          AND NEW.state IN ('ringing_expert', 'ringing_client', 'connected'))
    EXECUTE FUNCTION requests_offer_guard();
CREATE TRIGGER requests_offer_guard_update
    BEFORE UPDATE OF state, expert_id ON requests
    FOR EACH ROW
    WHEN (NEW.expert_id IS NOT NULL
          AND NEW.state IN ('ringing_expert', 'ringing_client', 'connected')
          AND (OLD.state NOT IN ('ringing_expert', 'ringing_client', 'connected')
               OR OLD.expert_id IS DISTINCT FROM NEW.expert_id))
    EXECUTE FUNCTION requests_offer_guard();

-- (3) The claim queue (0012) of an expert says whether they have an active request and when
--     their earliest waiting request is due: a row's share of that is its expert, whether
--     it is active, whether it is waiting, and its due time. An update changing none of
--     those (a move between active states, a final state to another) refreshes nothing.
DROP TRIGGER requests_queue ON requests;
CREATE TRIGGER requests_queue
    AFTER INSERT OR DELETE ON requests
    FOR EACH ROW EXECUTE FUNCTION requests_queue_sync();
CREATE TRIGGER requests_queue_update
    AFTER UPDATE OF state, next_attempt_at, expert_id ON requests
    FOR EACH ROW
    WHEN (OLD.expert_id IS DISTINCT FROM NEW.expert_id
          OR OLD.next_attempt_at IS DISTINCT FROM NEW.next_attempt_at
          OR (OLD.state = 'waiting') <> (NEW.state = 'waiting')
          OR (OLD.state IN ('ringing_expert', 'ringing_client', 'connected'))
             <> (NEW.state IN ('ringing_expert', 'ringing_client', 'connected')))
    EXECUTE FUNCTION requests_queue_sync();

-- (4) Wake-ups (0006, 0007): a request moving into an active state (claimed, ringing the
--     client, bridged) with its due time unchanged frees no expert and makes nothing due,
--     nor does the claim queue's own bookkeeping on `experts` (engaged, waiting_since: the
--     request change that caused it says so itself). Those no longer wake every engine's
--     dispatcher (a pass is several queries): the request's move notifies 'ivr_pages'
--     instead, which only the live pages listen to (store/notify.py), and the bookkeeping
--     nothing (the request's own notification, same transaction, carries the same expert
--     id). Every other new request, move, due-time change or expert change notifies
--     'ivr_requests' as before (the pages listen to both).
CREATE FUNCTION notify_page_change() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('ivr_pages', NEW.expert_id::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER requests_notify ON requests;
CREATE TRIGGER requests_notify
    AFTER INSERT ON requests
    FOR EACH ROW EXECUTE FUNCTION notify_request_change();
CREATE TRIGGER requests_notify_move
    AFTER UPDATE OF state, next_attempt_at ON requests
    FOR EACH ROW
    WHEN (NEW.state NOT IN ('ringing_expert', 'ringing_client', 'connected')
          OR OLD.next_attempt_at IS DISTINCT FROM NEW.next_attempt_at)
    EXECUTE FUNCTION notify_request_change();
CREATE TRIGGER requests_notify_page
    AFTER UPDATE OF state, next_attempt_at ON requests
    FOR EACH ROW
    WHEN (NEW.state IN ('ringing_expert', 'ringing_client', 'connected')
          AND OLD.next_attempt_at IS NOT DISTINCT FROM NEW.next_attempt_at)
    EXECUTE FUNCTION notify_page_change();

DROP TRIGGER experts_notify ON experts;
CREATE TRIGGER experts_notify
    AFTER UPDATE ON experts
    FOR EACH ROW
    WHEN (OLD IS DISTINCT FROM NEW
          AND OLD.engaged IS NOT DISTINCT FROM NEW.engaged
          AND OLD.waiting_since IS NOT DISTINCT FROM NEW.waiting_since)
    EXECUTE FUNCTION notify_expert_change();

-- (5) The outbox's wake-up (0007) fired once per INSERT statement, even one inserting no row
--     (a statement's CTE that queues an email only when something happened, such as
--     expiry's on every dispatcher pass): once per inserted row instead. PostgreSQL folds
--     a transaction's identical notifications into one, so a batch still wakes once.
DROP TRIGGER outbox_notify ON outbox_emails;
CREATE TRIGGER outbox_notify
    AFTER INSERT ON outbox_emails
    FOR EACH ROW EXECUTE FUNCTION notify_outbox();
