"""The ``cel`` table and its queries, with rows inserted the way Asterisk's cel_pgsql does.

cel_pgsql (cel/cel_pgsql.c) reads the table's columns from pg_catalog at load, then builds
one INSERT per event naming every column: known names get a value formatted by the column's
type name, unknown ones DEFAULT. ``_insert_like_cel_pgsql`` does the same, so these tests
hold the schema to what Asterisk sends; tests/e2e/test_cel.py checks it with Asterisk itself.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from ivr_engine.store import cel

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 20, 9, 30, 0, 123456, tzinfo=UTC)

# cel_pgsql's own column query (the schema part: current_schema(), as when schema= is unset).
COLUMNS_SQL = """
SELECT a.attname, t.typname
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON NOT a.attisdropped AND a.attnum > 0 AND a.attrelid = c.oid
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
WHERE c.relname = 'cel' AND n.nspname = current_schema()
ORDER BY a.attnum
"""

KNOWN = {
    "eventtype", "eventtime", "amaflags", "userdeftype", "cid_name", "cid_num", "cid_ani",
    "cid_rdnis", "cid_dnid", "exten", "context", "channame", "appname", "appdata",
    "accountcode", "peeraccount", "uniqueid", "linkedid", "userfield", "peer", "extra",
}  # fmt: skip


def _literal(column: str, typname: str, value: object) -> str:
    if column not in KNOWN:
        return "DEFAULT"
    if column == "eventtime":
        assert isinstance(value, datetime)
        if typname.startswith("int"):
            return str(int(value.timestamp()))
        if typname.startswith("float"):
            return f"{value.timestamp():f}"
        # usegmtime = yes: UTC wall-clock time, microseconds, no offset (DATE_FORMAT).
        return "'" + value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") + "'"
    if typname.startswith("int"):
        return str(int(str(value) or 0))
    return "'" + str(value).replace("'", "''") + "'"


async def _insert_like_cel_pgsql(
    conn: asyncpg.Connection | asyncpg.Pool,
    eventtype: str,
    uniqueid: str,
    at: datetime,
    *,
    extra: str = "",
    peer: str = "",
) -> None:
    values = {
        "eventtype": eventtype,
        "eventtime": at,
        "uniqueid": uniqueid,
        "linkedid": uniqueid,
        "channame": f"PJSIP/phone-network-{uniqueid}",
        "amaflags": 3,
        "extra": extra,
        "peer": peer,
    }
    columns = await conn.fetch(COLUMNS_SQL)
    names = ",".join(f'"{c["attname"]}"' for c in columns)
    literals = ",".join(
        _literal(c["attname"], c["typname"], values.get(c["attname"], "")) for c in columns
    )
    await conn.execute(f"INSERT INTO cel ({names}) VALUES ({literals})")


def _hangup_extra(cause: int) -> str:
    return json.dumps({"hangupcause": cause, "hangupsource": "", "dialstatus": ""})


async def _bridged(pool: asyncpg.Pool, channel: str, entered: datetime, left: datetime) -> None:
    bridge = json.dumps({"bridge_id": "ivr-1-bridge", "bridge_technology": "simple_bridge"})
    await _insert_like_cel_pgsql(pool, "BRIDGE_ENTER", channel, entered, extra=bridge)
    await _insert_like_cel_pgsql(pool, "BRIDGE_EXIT", channel, left, extra=bridge)


async def test_columns_are_the_ones_cel_pgsql_fills(pool: asyncpg.Pool) -> None:
    types = {r["attname"]: r["typname"] for r in await pool.fetch(COLUMNS_SQL)}
    assert KNOWN <= types.keys()
    # Not int/float: cel_pgsql writes the text form with microseconds.
    assert types["eventtime"] == "timestamp"
    assert types["eventtype"] == "text" and types["amaflags"] == "int4"
    assert set(types) - KNOWN == {"id", "event_at"}  # both filled by DEFAULT


async def test_event_time_is_kept_to_the_microsecond_whatever_the_session_zone(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        # Asterisk's session zone is the server default or PGTZ: it must not matter.
        await conn.execute("SET TimeZone = 'Pacific/Auckland'")
        try:
            await _insert_like_cel_pgsql(conn, "CHAN_START", "chan-a", T0)
        finally:
            await conn.execute("RESET TimeZone")
    row = await pool.fetchrow("SELECT event_at, amaflags FROM cel WHERE uniqueid = 'chan-a'")
    assert row["event_at"] == T0 and row["amaflags"] == 3


async def test_bridge_end_is_the_first_exit(pool: asyncpg.Pool) -> None:
    await _bridged(pool, "expert-1", T0, T0 + timedelta(seconds=42, microseconds=250))
    await _bridged(pool, "client-1", T0, T0 + timedelta(seconds=41, microseconds=999))
    await _insert_like_cel_pgsql(pool, "HANGUP", "client-1", T0 + timedelta(seconds=41.5))
    end = await cel.bridge_end(pool, ["expert-1", "client-1"], T0)
    assert end == T0 + timedelta(seconds=41, microseconds=999)
    assert await cel.bridge_end(pool, ["expert-1"], T0) == T0 + timedelta(seconds=42.00025)


async def test_a_missing_exit_falls_back_to_the_hangup(pool: asyncpg.Pool) -> None:
    # The client's BRIDGE_EXIT row was lost; its HANGUP row says when it left.
    await _bridged(pool, "expert-2", T0, T0 + timedelta(seconds=90))
    await _insert_like_cel_pgsql(pool, "BRIDGE_ENTER", "client-2", T0)
    await _insert_like_cel_pgsql(
        pool, "HANGUP", "client-2", T0 + timedelta(seconds=30), extra=_hangup_extra(16)
    )
    await _insert_like_cel_pgsql(pool, "CHAN_END", "client-2", T0 + timedelta(seconds=30))
    end = await cel.bridge_end(pool, ["expert-2", "client-2"], T0)
    assert end == T0 + timedelta(seconds=30)


async def test_rows_before_since_belong_to_another_call(pool: asyncpg.Pool) -> None:
    yesterday = T0 - timedelta(days=1)
    await _bridged(pool, "reused-id", yesterday, yesterday + timedelta(seconds=5))
    assert await cel.bridge_end(pool, ["reused-id"], T0) is None
    await _bridged(pool, "reused-id", T0, T0 + timedelta(seconds=7))
    assert await cel.bridge_end(pool, ["reused-id"], T0) == T0 + timedelta(seconds=7)
    assert await cel.bridge_end(pool, ["reused-id"], yesterday) == yesterday + timedelta(seconds=5)


async def test_nothing_recorded_is_none(pool: asyncpg.Pool) -> None:
    await _bridged(pool, "someone-else", T0, T0 + timedelta(seconds=3))
    assert await cel.bridge_end(pool, ["never-seen"], T0) is None
    assert await cel.bridge_end(pool, [], T0) is None
    assert await cel.channel_end(pool, "never-seen", T0) is None
    assert await cel.channel_end(pool, "someone-else", T0) is None  # in a bridge, not hung up


async def test_channel_end_and_its_cause(pool: asyncpg.Pool) -> None:
    at = T0 + timedelta(seconds=12, microseconds=5)
    await _insert_like_cel_pgsql(pool, "HANGUP", "leg-1", at, extra=_hangup_extra(44))
    await _insert_like_cel_pgsql(pool, "CHAN_END", "leg-1", at)
    assert await cel.channel_end(pool, "leg-1", T0) == cel.ChannelEnd(at=at, cause=44)
    # Only CHAN_END survived: the time is known, the cause is not.
    await _insert_like_cel_pgsql(pool, "CHAN_END", "leg-2", at)
    assert await cel.channel_end(pool, "leg-2", T0) == cel.ChannelEnd(at=at, cause=None)


async def test_since_must_be_an_instant(pool: asyncpg.Pool) -> None:
    with pytest.raises(ValueError):
        await cel.bridge_end(pool, ["x"], datetime(2026, 11, 20, 9, 30))
