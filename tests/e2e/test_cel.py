"""Asterisk's own record of a consultation: the CEL rows cel_pgsql writes into PostgreSQL,
held against what the engine recorded from ARI events and what the phones themselves did.

This is what a later engine reads to close a consultation that outlived the engine which
bridged it (store/cel.py), so the test states how close that record is to the truth.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from ivr_devkit.sandbox import Sandbox, SandboxInfo
from ivr_devkit.simphones import HELLO, PhoneBook, answer
from ivr_engine.ari.models import parse_ari_time
from ivr_engine.store import cel

from .conftest import CEL_ROLE, AriObserver, Harness, cel_logged

pytestmark = pytest.mark.e2e

EXPERT = "+390600000141"
CLIENT = "+393330000242"

# ARI prints event times to the millisecond, truncated; CEL keeps the microseconds of the
# very same Stasis message timestamp.
SAME_STASIS_MESSAGE = timedelta(milliseconds=1)
# From the phone's BYE to Asterisk's BRIDGE_EXIT, and from BRIDGE_EXIT to the end the engine
# took from ARI (StasisEnd/ChannelDestroyed of the leg): a few milliseconds on loopback; the
# bound leaves room for a loaded 2-core test machine.
BYE_TO_EXIT = timedelta(milliseconds=250)
EXIT_TO_ENGINE_END = timedelta(milliseconds=250)
# SIPp stamps a trace line after sending the message: Asterisk's exit may come a few
# microseconds "before" the BYE by that clock.
SIPP_TRACE_LAG = timedelta(milliseconds=5)


async def _cel_rows(pool: asyncpg.Pool, channel_id: str, since: datetime) -> list[Any]:
    return list(
        await pool.fetch(
            "SELECT eventtype, event_at, extra, linkedid FROM cel"
            " WHERE uniqueid = $1 AND event_at >= $2 ORDER BY event_at, id",
            channel_id,
            since,
        )
    )


async def test_cel_bridge_end_matches_the_engine_and_the_phones(
    harness: Callable[..., Awaitable[Harness]], phones: PhoneBook, cel_pool: asyncpg.Pool
) -> None:
    # No acceptance prompt: the expert answers, says hello (answering-machine detection) and
    # the client is called.
    await phones.phone(EXPERT, answer(greeting=HELLO))
    # The client hears "connecting you" (about 1.2 s), talks, then hangs up.
    client = await phones.phone(CLIENT, answer(hangup_after_ms=6500))
    h = await harness()
    assert h.engine.settings.cel_dsn != h.engine.settings.database_url.get_secret_value()
    async with AriObserver(h.info, "ChannelEnteredBridge", "ChannelLeftBridge") as ari:
        request_id = await h.request(await h.expert(EXPERT, ivr=False), CLIENT)
        assert await h.wait_state(request_id, "completed", timeout=60) == "completed"
    phone = await client.finished(20)
    assert phone.ok, phone
    c = await h.pool.fetchrow("SELECT * FROM consultations WHERE request_id = $1", request_id)
    assert c["ended_by"] == "client"
    since = (await h.attempts(request_id))[0]["started_at"]
    expert_id, client_id = c["expert_channel_id"], c["client_channel_id"]

    # Asterisk logged the client's channel under the id the engine chose, start to end.
    await cel_logged(cel_pool, client_id, since)
    rows = await _cel_rows(cel_pool, client_id, since)
    kinds = [r["eventtype"] for r in rows]
    assert kinds == ["CHAN_START", "ANSWER", "BRIDGE_ENTER", "BRIDGE_EXIT", "HANGUP", "CHAN_END"]
    exit_row = rows[3]
    assert json.loads(exit_row["extra"])["bridge_id"] == c["bridge_id"]
    assert json.loads(rows[4]["extra"])["hangupcause"] == 16  # normal clearing: a BYE

    end = await cel.bridge_end(cel_pool, [expert_id, client_id], c["bridge_start"])
    assert end == exit_row["event_at"]  # the client left first

    # Same Stasis messages as ARI's: the bridge start the engine recorded and the exit.
    (left,) = ari.of("ChannelLeftBridge", client_id)
    ari_left = parse_ari_time(left["timestamp"])
    assert timedelta(0) <= end - ari_left < SAME_STASIS_MESSAGE, (end, ari_left)
    entered = await cel_pool.fetchval(
        "SELECT max(event_at) FROM cel WHERE eventtype = 'BRIDGE_ENTER'"
        " AND uniqueid = ANY($1::text[]) AND event_at >= $2",
        [expert_id, client_id],
        since,
    )
    assert timedelta(0) <= entered - c["bridge_start"] < SAME_STASIS_MESSAGE

    # The phone's own clock (same machine): it sent its BYE just before Asterisk's exit.
    (bye,) = [m for m in phone.messages if m.direction == "sent" and m.kind == "BYE"]
    assert bye.at is not None
    engine_end = c["bridge_end"]
    print(
        f"\nCEL bridge end − phone BYE: {(end - bye.at).total_seconds() * 1000:.3f} ms;"
        f" engine end (ARI) − CEL: {(engine_end - end).total_seconds() * 1000:.3f} ms;"
        f" CEL − ARI ChannelLeftBridge: {(end - ari_left).total_seconds() * 1000:.3f} ms"
    )
    assert -SIPP_TRACE_LAG <= end - bye.at < BYE_TO_EXIT, (bye.at, end)
    # The engine's end is an ARI time, truncated to the millisecond.
    assert -SAME_STASIS_MESSAGE < engine_end - end < EXIT_TO_ENGINE_END, (end, engine_end)


async def test_a_channel_absent_from_cel_has_no_end(cel_pool: asyncpg.Pool) -> None:
    since = datetime.now(UTC) - timedelta(days=1)
    never = f"never-dialled-{uuid.uuid4()}"
    assert await cel.bridge_end(cel_pool, [never], since) is None
    assert await cel.channel_end(cel_pool, never, since) is None


# --- What cel_pgsql does when PostgreSQL will not take its rows -----------------------------
# The outage is made by refusing Asterisk's role (NOLOGIN) and cutting its connection: to
# cel_pgsql that is PostgreSQL unreachable, without stopping the session's cluster.

PROBE_ENDPOINT = "PJSIP/phone-network/sip:cel-probe@127.0.0.1:9"  # created, never dialled
PROBE_EVENTS = ["CHAN_START", "HANGUP", "CHAN_END"]


async def _probe(ari: AriObserver, name: str) -> str:
    """A channel created and hung up at once: three CEL events, no call."""
    channel_id = f"cel-{name}-{uuid.uuid4().hex[:8]}"
    await ari.rest(
        "POST", "/channels/create", endpoint=PROBE_ENDPOINT, app=ari.APP, channelId=channel_id
    )
    await ari.rest("DELETE", f"/channels/{channel_id}")
    await ari.wait_for("ChannelDestroyed", channel_id)
    return channel_id


async def _kinds(pool: asyncpg.Pool, channel_id: str, count: int = 0) -> list[str]:
    """The channel's CEL event types, waiting (5 s at most) until there are ``count``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while True:
        rows = await pool.fetch(
            "SELECT eventtype FROM cel WHERE uniqueid = $1 ORDER BY id", channel_id
        )
        if len(rows) >= count or loop.time() > deadline:
            return [r["eventtype"] for r in rows]
        await asyncio.sleep(0.05)


class AsteriskLog:
    """messages.log from the moment this object is made."""

    def __init__(self, info: SandboxInfo) -> None:
        self.path = info.root / "var/log/asterisk/messages.log"
        self.start = self.path.stat().st_size

    def text(self) -> str:
        with self.path.open("rb") as log:
            log.seek(self.start)
            return log.read().decode(errors="replace")

    async def wait_for(self, needle: str, count: int = 1, timeout: float = 10) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.text().count(needle) < count:
            assert loop.time() < deadline, f"{needle!r} x{count} not logged:\n{self.text()}"
            await asyncio.sleep(0.05)


async def _refuse_asterisk(pool: asyncpg.Pool) -> None:
    await pool.execute(f"ALTER ROLE {CEL_ROLE} NOLOGIN")
    await pool.execute(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = $1",
        CEL_ROLE,
    )


async def _admit_asterisk(pool: asyncpg.Pool) -> None:
    await pool.execute(f"ALTER ROLE {CEL_ROLE} LOGIN")


async def test_rows_are_dropped_while_postgresql_is_unreachable(
    sandbox: SandboxInfo, cel_pool: asyncpg.Pool
) -> None:
    log = AsteriskLog(sandbox)
    async with AriObserver(sandbox, "ChannelDestroyed") as ari:
        before = await _probe(ari, "before")
        assert await _kinds(cel_pool, before, 3) == PROBE_EVENTS
        await _refuse_asterisk(cel_pool)
        try:
            during = await _probe(ari, "during")
            # cel_pgsql has tried, and given up on, the last of the three events.
            await log.wait_for("cel_pgsql: Unable to connect to database server")
        finally:
            await _admit_asterisk(cel_pool)
        after = await _probe(ari, "after")
        # Back by itself at the next event, with no restart; the CEL thread takes events in
        # order, so "during" was settled before "after" was written: its rows are lost.
        assert await _kinds(cel_pool, after, 3) == PROBE_EVENTS
        assert await _kinds(cel_pool, during) == []
    print("\n" + "\n".join(line for line in log.text().splitlines() if "cel_pgsql" in line))
    assert "Calls will not be logged!" in log.text()


async def test_cel_pgsql_learns_the_columns_only_when_it_loads(
    sandbox: SandboxInfo, cel_pool: asyncpg.Pool
) -> None:
    box = Sandbox()
    log = AsteriskLog(sandbox)
    async with AriObserver(sandbox, "ChannelDestroyed") as ari:
        try:
            await _refuse_asterisk(cel_pool)
            try:
                await asyncio.to_thread(box.cli, "module unload cel_pgsql.so")
                await asyncio.to_thread(box.cli, "module load cel_pgsql.so")  # no columns read
                await log.wait_for("CALLS WILL NOT BE LOGGED")
            finally:
                await _admit_asterisk(cel_pool)
            # PostgreSQL is back, but every insert now names no column: each row is lost.
            late = await _probe(ari, "late")
            await log.wait_for("DROPPING CALL RECORD", count=3)
            # A reload with cel_pgsql.conf unchanged does not read the columns again.
            await asyncio.to_thread(box.cli, "module reload cel_pgsql.so")
            reloaded = await _probe(ari, "reloaded")
            await log.wait_for("DROPPING CALL RECORD", count=6)
            assert await _kinds(cel_pool, late) == [] and await _kinds(cel_pool, reloaded) == []
        finally:
            # Unloading and loading it again does.
            await _admit_asterisk(cel_pool)
            await asyncio.to_thread(box.cli, "module unload cel_pgsql.so")
            await asyncio.to_thread(box.cli, "module load cel_pgsql.so")
        fresh = await _probe(ari, "fresh")
        assert await _kinds(cel_pool, fresh, 3) == PROBE_EVENTS
