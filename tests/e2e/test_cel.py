"""Asterisk's own record of a consultation: the CEL rows cel_pgsql writes into PostgreSQL,
held against what the engine recorded from ARI events and what the phones themselves did.

This is what a later engine reads to close a consultation that outlived the engine which
bridged it (store/cel.py), so the test states how close that record is to the truth.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from ivr_devkit.simphones import PhoneBook, answer
from ivr_engine.ari.models import parse_ari_time
from ivr_engine.store import cel, connect_pool

from .conftest import AriObserver, Harness

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


@pytest.fixture
async def cel_pool(cel_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect_pool(cel_dsn)
    try:
        yield pool
    finally:
        await pool.close()


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
    await phones.phone(EXPERT, answer("1", dtmf_delay_ms=1000))
    # The client hears "your expert accepted..." (about 4 s), talks, then hangs up.
    client = await phones.phone(CLIENT, answer(hangup_after_ms=6500))
    h = await harness()
    assert h.engine.settings.cel_dsn != h.engine.settings.database_url.get_secret_value()
    async with AriObserver(h.info, "ChannelEnteredBridge", "ChannelLeftBridge") as ari:
        request_id = await h.request(await h.expert(EXPERT), CLIENT)
        assert await h.wait_state(request_id, "completed", timeout=60) == "completed"
    phone = await client.finished(20)
    assert phone.ok, phone
    c = await h.pool.fetchrow("SELECT * FROM consultations WHERE request_id = $1", request_id)
    assert c["ended_by"] == "client"
    since = (await h.attempts(request_id))[0]["started_at"]
    expert_id, client_id = c["expert_channel_id"], c["client_channel_id"]

    # Asterisk logged the client's channel under the id the engine chose, start to end.
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
