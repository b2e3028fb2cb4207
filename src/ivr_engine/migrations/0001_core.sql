-- Core call-flow state: experts, clients, waiting lists, call attempts, consultations.
-- Timestamps are timestamptz; money is numeric.

CREATE TABLE experts (
    id              bigserial PRIMARY KEY,
    alias           text NOT NULL,
    phone           text NOT NULL CHECK (phone <> ''),
    email           text NOT NULL DEFAULT '',
    language        text NOT NULL DEFAULT 'en',
    rate_per_minute numeric(8, 2) NOT NULL CHECK (rate_per_minute >= 0),
    acceptance_ivr  boolean NOT NULL DEFAULT true,   -- false: bridge as soon as the expert answers
    taking_calls    boolean NOT NULL DEFAULT true,   -- false: new requests are refused with 409
    unreachable_until timestamptz,                   -- after a missed call: not rung again before
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE clients (
    id         bigserial PRIMARY KEY,
    alias      text NOT NULL,
    phone      text NOT NULL UNIQUE CHECK (phone <> ''),
    email      text NOT NULL DEFAULT '',
    language   text NOT NULL DEFAULT 'en',
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per entry of an expert's waiting list. `state` moves only along the transitions
-- written in src/ivr_engine/domain/requests.py; every move is one transaction that also
-- appends to request_events.
CREATE TABLE requests (
    id              bigserial PRIMARY KEY,
    expert_id       bigint NOT NULL REFERENCES experts (id),
    client_id       bigint NOT NULL REFERENCES clients (id),
    state           text NOT NULL DEFAULT 'waiting' CHECK (state IN (
                        'waiting', 'ringing_expert', 'ringing_client', 'connected',
                        'completed', 'refused', 'lost', 'client_unreachable', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,          -- calls placed to the expert
    next_attempt_at timestamptz NOT NULL DEFAULT now(),  -- not before this time
    end_reason      text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    ended_at        timestamptz
);
CREATE INDEX requests_waiting ON requests (expert_id, next_attempt_at, id) WHERE state = 'waiting';
-- The guarantee that an expert is never rung twice at once, whatever the engines do.
CREATE UNIQUE INDEX requests_one_active_per_expert ON requests (expert_id)
    WHERE state IN ('ringing_expert', 'ringing_client', 'connected');

CREATE TABLE request_events (
    id         bigserial PRIMARY KEY,
    request_id bigint NOT NULL REFERENCES requests (id),
    from_state text,
    to_state   text NOT NULL,
    detail     text NOT NULL DEFAULT '',
    at         timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX request_events_request ON request_events (request_id, id);

-- Every leg the engine dials. The row (and its channel id) is written before the originate,
-- so a retried originate reuses the id and Asterisk refuses a duplicate.
CREATE TABLE call_attempts (
    id            bigserial PRIMARY KEY,
    request_id    bigint NOT NULL REFERENCES requests (id),
    leg           text NOT NULL CHECK (leg IN ('expert', 'client')),
    purpose       text NOT NULL CHECK (purpose IN ('offer', 'connect', 'notify_refused')),
    channel_id    text NOT NULL UNIQUE,
    dial_string   text NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    answered_at   timestamptz,
    ended_at      timestamptz,
    hangup_cause  integer,
    hangup_text   text NOT NULL DEFAULT '',
    dtmf          text NOT NULL DEFAULT '',     -- every key the leg pressed, in order
    choice        text,                          -- the accepted choice: '1', '3' or NULL
    outcome       text NOT NULL DEFAULT 'dialing'
);
CREATE INDEX call_attempts_request ON call_attempts (request_id, id);

CREATE TABLE consultations (
    id                bigserial PRIMARY KEY,
    request_id        bigint NOT NULL UNIQUE REFERENCES requests (id),
    expert_id         bigint NOT NULL REFERENCES experts (id),
    client_id         bigint NOT NULL REFERENCES clients (id),
    bridge_id         text NOT NULL UNIQUE,
    expert_channel_id text NOT NULL,
    client_channel_id text NOT NULL,
    rate_per_minute   numeric(8, 2) NOT NULL,
    bridge_start      timestamptz NOT NULL,
    bridge_end        timestamptz,
    billed_seconds    integer CHECK (billed_seconds >= 0),
    ended_by          text NOT NULL DEFAULT ''   -- 'expert', 'client', 'engine'
);

-- Emails to send; the sender belongs to a later feature, the rows are recorded now.
CREATE TABLE outbox_emails (
    id         bigserial PRIMARY KEY,
    kind       text NOT NULL,
    request_id bigint REFERENCES requests (id),
    to_address text NOT NULL,
    payload    jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
);
