-- Money: the expert's category, what each consultation froze when it started, its bill,
-- and the outbox columns the email sender needs.

ALTER TABLE experts ADD COLUMN category text NOT NULL DEFAULT 'general';

-- Frozen when the bridge starts: changing the expert's rate or number later never
-- rewrites a consultation. Every amount below is reproducible from these inputs.
ALTER TABLE consultations
    ADD COLUMN category             text NOT NULL DEFAULT 'general',
    ADD COLUMN line_type            text NOT NULL DEFAULT 'mobile',
    ADD COLUMN transfer_per_minute  numeric(8, 4) NOT NULL DEFAULT 0,  -- before the rule
    ADD COLUMN transfer_factor      numeric(3, 2) NOT NULL DEFAULT 1, -- the rule: 1, 0.5 or 0
    ADD COLUMN transfer_rule        text NOT NULL DEFAULT '',
    ADD COLUMN commission_percent   numeric(5, 2) NOT NULL DEFAULT 0,
    ADD COLUMN granularity_seconds  integer NOT NULL DEFAULT 1,
    ADD COLUMN minimum_seconds      integer NOT NULL DEFAULT 0,
    -- The bill, written once when the consultation ends.
    ADD COLUMN charged_seconds      integer,
    ADD COLUMN client_price         numeric(10, 2),
    ADD COLUMN transfer_cost        numeric(10, 2),
    ADD COLUMN commission           numeric(10, 2),
    ADD COLUMN earnings             numeric(10, 2),
    ADD COLUMN bill_note            text NOT NULL DEFAULT '';
CREATE INDEX consultations_expert ON consultations (expert_id, id DESC);

-- Delivery bookkeeping for the email sender (at-least-once; the Message-ID is stable per
-- row so a re-send after a crash between send and mark is recognisable as a duplicate).
ALTER TABLE outbox_emails
    ADD COLUMN consultation_id bigint REFERENCES consultations (id),
    ADD COLUMN language    text NOT NULL DEFAULT 'en',
    ADD COLUMN attempts    integer NOT NULL DEFAULT 0,
    ADD COLUMN next_try_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN last_error  text NOT NULL DEFAULT '',
    ADD COLUMN failed_at   timestamptz;                 -- gave up after the last retry
CREATE INDEX outbox_due ON outbox_emails (next_try_at, id) WHERE sent_at IS NULL AND failed_at IS NULL;
