-- Calls outlive the engine. Every engine has an identity and a lease (heartbeat); a request
-- records the engine that runs its call. An engine recovers only the work of an engine whose
-- lease has expired (or that stopped cleanly), never a live engine's calls.
CREATE TABLE engines (
    id           uuid PRIMARY KEY,
    ari_app      text NOT NULL,
    host         text NOT NULL DEFAULT '',
    pid          integer NOT NULL DEFAULT 0,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    stopped_at   timestamptz  -- a clean stop: its calls may be adopted at once
);

ALTER TABLE requests ADD COLUMN owner uuid REFERENCES engines (id);
-- Served before any other waiting request of the same expert: its call was interrupted by the
-- engine (a stop or a crash), not by anything the expert or the client did.
ALTER TABLE requests ADD COLUMN priority boolean NOT NULL DEFAULT false;
CREATE INDEX requests_owner ON requests (owner)
    WHERE state IN ('ringing_expert', 'ringing_client', 'connected');

-- The last moment an engine saw the bridge up: the end of the bill when Asterisk's own record
-- of the end (CEL) is missing.
ALTER TABLE consultations ADD COLUMN seen_at timestamptz;
