-- Expiry (IVR_REQUEST_TTL_HOURS) runs on every pass of the dispatcher: which waiting requests
-- are too old, and when the oldest one expires. Without this index both read every waiting
-- request; with it both read the oldest few, whatever the length of the lists.
CREATE INDEX requests_waiting_age ON requests (created_at, id) WHERE state = 'waiting';
