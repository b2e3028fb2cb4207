-- Availability: weekly planning in the expert's timezone, date overrides, pause, channels.
-- An expert with no weekly slot at all has not set a planning yet and is treated as
-- always within hours (pause and channels still apply).

ALTER TABLE experts
    ADD COLUMN timezone     text NOT NULL DEFAULT 'Europe/Rome',
    ADD COLUMN paused_until timestamptz,
    ADD COLUMN channel_phone boolean NOT NULL DEFAULT true,
    ADD COLUMN channel_chat  boolean NOT NULL DEFAULT true,
    ADD COLUMN channel_video boolean NOT NULL DEFAULT true;

CREATE TABLE planning_slots (
    expert_id  bigint NOT NULL REFERENCES experts (id) ON DELETE CASCADE,
    weekday    smallint NOT NULL CHECK (weekday BETWEEN 0 AND 6),   -- 0 = Monday
    start_time time NOT NULL,
    end_time   time NOT NULL,        -- may be <= start_time: the slot runs past midnight
    PRIMARY KEY (expert_id, weekday, start_time)
);

-- A different schedule (or none: no row in `slots`) for one local date.
CREATE TABLE planning_overrides (
    expert_id bigint NOT NULL REFERENCES experts (id) ON DELETE CASCADE,
    day       date NOT NULL,
    slots     jsonb NOT NULL DEFAULT '[]',   -- ["09:00-12:00", "22:00-02:00", ...]
    PRIMARY KEY (expert_id, day)
);
