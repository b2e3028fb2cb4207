-- The web control panel: sign-in accounts (experts and the service's staff), their
-- sessions, sign-in throttling, the expert's notes on clients and messages to clients,
-- and a NOTIFY on every waiting-list change so open pages update live.

CREATE TABLE accounts (
    id            bigserial PRIMARY KEY,
    email         text NOT NULL UNIQUE CHECK (email = lower(email) AND email <> ''),
    password_hash text NOT NULL,                 -- scrypt, never the password
    role          text NOT NULL CHECK (role IN ('expert', 'admin')),
    expert_id     bigint UNIQUE REFERENCES experts (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'expert') = (expert_id IS NOT NULL))
);

-- The cookie carries a random token; only its SHA-256 is stored, so a leaked table
-- cannot be replayed as cookies.
CREATE TABLE panel_sessions (
    token_hash text PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    csrf       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX panel_sessions_account ON panel_sessions (account_id);

-- Failed sign-ins per email and per client address: `key` is 'email:<x>' or 'ip:<x>'.
CREATE TABLE login_failures (
    key          text PRIMARY KEY,
    failures     integer NOT NULL DEFAULT 0,
    window_start timestamptz NOT NULL DEFAULT now(),
    locked_until timestamptz
);

-- An expert's private notes on a client.
CREATE TABLE client_notes (
    id         bigserial PRIMARY KEY,
    expert_id  bigint NOT NULL REFERENCES experts (id),
    client_id  bigint NOT NULL REFERENCES clients (id),
    body       text NOT NULL CHECK (body <> ''),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX client_notes_pair ON client_notes (expert_id, client_id, id DESC);

-- "Start a conversation with ...": kept here, delivered through the outbox.
CREATE TABLE client_messages (
    id         bigserial PRIMARY KEY,
    expert_id  bigint NOT NULL REFERENCES experts (id),
    client_id  bigint NOT NULL REFERENCES clients (id),
    body       text NOT NULL CHECK (body <> ''),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX client_messages_pair ON client_messages (expert_id, client_id, id DESC);

ALTER TABLE outbox_emails ADD COLUMN message_id bigint REFERENCES client_messages (id);

-- Live pages: every new request or state change notifies channel 'ivr_requests' with the
-- expert's id (the payload is only an id: pages re-read what they show).
CREATE FUNCTION notify_request_change() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('ivr_requests', NEW.expert_id::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER requests_notify
    AFTER INSERT OR UPDATE OF state ON requests
    FOR EACH ROW EXECUTE FUNCTION notify_request_change();

-- A pause, a channel switch or a new rate shows on the expert's open pages too.
CREATE FUNCTION notify_expert_change() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('ivr_requests', NEW.id::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER experts_notify
    AFTER UPDATE ON experts
    FOR EACH ROW WHEN (OLD IS DISTINCT FROM NEW)
    EXECUTE FUNCTION notify_expert_change();
