-- PINs of the phone menu (scrypt hashes, never the PIN) and the lockouts after wrong PINs.
ALTER TABLE experts ADD COLUMN pin_hash text;

-- Wrong PINs are counted per expert and per calling number: either one reaching the limit
-- locks the menu for it. `key` is 'expert:<id>' or 'caller:<number>'.
CREATE TABLE pin_failures (
    key          text PRIMARY KEY,
    failures     integer NOT NULL DEFAULT 0,
    locked_until timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Every lockout, kept for the service's staff.
CREATE TABLE pin_lockouts (
    id         bigserial PRIMARY KEY,
    expert_id  bigint REFERENCES experts (id),
    caller     text NOT NULL,
    locked_at  timestamptz NOT NULL DEFAULT now(),
    locked_until timestamptz NOT NULL
);
