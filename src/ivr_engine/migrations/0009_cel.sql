-- Asterisk's own record of every channel: Channel Event Logging rows written by cel_pgsql
-- (asterisk-conf/cel.conf, asterisk-conf/cel_pgsql.conf), read by store/cel.py to close a
-- consultation with the end Asterisk saw when no engine was there to see it.
--
-- cel_pgsql reads this table's columns once, when the module loads (cel/cel_pgsql.c,
-- process_my_load_module), and fills each column it knows by name; any other column gets
-- DEFAULT. So the names below are Asterisk's, and the table must exist before Asterisk
-- loads cel_pgsql. How it writes each column depends on the column's type name:
--   eventtime  "int*": whole epoch seconds; "float*": epoch seconds with 6 decimals;
--              anything else: the text '%Y-%m-%d %H:%M:%S.<microseconds>' in Asterisk's
--              local time, or in UTC with usegmtime = yes, and no UTC offset at all.
--              A timestamptz column would read that text in the session's TimeZone (the
--              server's default, or PGTZ in Asterisk's environment), a silent dependency;
--              so eventtime is a timestamp holding UTC wall-clock time to the microsecond
--              (cel_pgsql.conf sets usegmtime = yes) and event_at is the same instant as
--              timestamptz, computed by PostgreSQL (cel_pgsql inserts DEFAULT into it).
--   eventtype  "int*": the number of the event type; text: its name (CHAN_START, ANSWER,
--              BRIDGE_ENTER, BRIDGE_EXIT, HANGUP, CHAN_END, LINKEDID_END...).
--   amaflags   "int*": the number; text: the number as text.
--   the rest   text (escaped), or "int*"/"float*" if the text parses as a number.
-- uniqueid is the channel id (the one the engine chose when it originated), linkedid the
-- id of the first channel of the call, peer the other channel of a bridge, extra a JSON
-- object or '' (HANGUP: hangupcause, hangupsource, dialstatus; BRIDGE_ENTER/BRIDGE_EXIT:
-- bridge_id, bridge_technology). extra stays text: '' is not valid jsonb and a failed
-- insert is a dropped row.
--
-- The database role Asterisk uses needs only INSERT on cel and USAGE on cel_id_seq.
CREATE TABLE cel (
    id          bigserial PRIMARY KEY,
    eventtype   text NOT NULL,
    eventtime   timestamp(6) without time zone NOT NULL,
    event_at    timestamptz GENERATED ALWAYS AS (eventtime AT TIME ZONE 'UTC') STORED,
    cid_name    text NOT NULL DEFAULT '',
    cid_num     text NOT NULL DEFAULT '',
    cid_ani     text NOT NULL DEFAULT '',
    cid_rdnis   text NOT NULL DEFAULT '',
    cid_dnid    text NOT NULL DEFAULT '',
    exten       text NOT NULL DEFAULT '',
    context     text NOT NULL DEFAULT '',
    channame    text NOT NULL DEFAULT '',
    appname     text NOT NULL DEFAULT '',
    appdata     text NOT NULL DEFAULT '',
    accountcode text NOT NULL DEFAULT '',
    peeraccount text NOT NULL DEFAULT '',
    uniqueid    text NOT NULL DEFAULT '',
    linkedid    text NOT NULL DEFAULT '',
    amaflags    integer NOT NULL DEFAULT 0,
    userfield   text NOT NULL DEFAULT '',
    userdeftype text NOT NULL DEFAULT '',
    peer        text NOT NULL DEFAULT '',
    extra       text NOT NULL DEFAULT ''
);

-- Look-ups are "what happened to these channels since the consultation started".
CREATE INDEX cel_uniqueid_time ON cel (uniqueid, event_at);
