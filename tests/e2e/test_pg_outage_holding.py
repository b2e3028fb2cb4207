"""PostgreSQL away while a caller holds on a service number (README, "Clients calling in"):
the caller is not dropped, the music goes on, the position announcements are skipped while
PostgreSQL cannot say the position, and once it is back they resume and the expert's
acceptance bridges the caller. Asserts on what Asterisk reports over ARI."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ivr_devkit.pgcluster import ThrowawayCluster
from ivr_devkit.simphones import Keys, PhoneBook, answer
from ivr_engine.store.retry import TRANSIENT

from .conftest import AriObserver, Harness

pytestmark = pytest.mark.e2e

SERVICE = "0200000001"
EXPERT = "+390600000191"
CALLER = "+393330000292"
StartHarness = Callable[..., Awaitable[Harness]]
POSITION = "sound:ivr-engine/hold_position"
PRESS_1 = "sound:ivr-engine/hold_press_1"


async def _db(h: Harness, method: str, sql: str, *args: Any) -> Any:
    """A query that waits out the outage (the pool's connections were cut)."""
    for _ in range(150):
        try:
            return await getattr(h.pool, method)(sql, *args)
        except TRANSIENT:
            await asyncio.sleep(0.2)
    raise AssertionError("PostgreSQL never came back")


def _on(observer: AriObserver, channel_id: str, start: int = 0) -> list[tuple[str, str]]:
    """(event type, media) of the playbacks on this channel, from event index ``start``."""
    return [
        (e["type"], e["playback"]["media_uri"])
        for e in observer.events[start:]
        if e["type"].startswith("Playback")
        and e["playback"]["target_uri"] == f"channel:{channel_id}"
    ]


async def _until(what: Callable[[], bool], timeout: float, why: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not what():
        assert loop.time() < deadline, why
        await asyncio.sleep(0.05)


async def test_postgres_away_while_holding_keeps_the_caller_and_bridges_them_after(
    harness: StartHarness, phones: PhoneBook, pg_cluster: ThrowawayCluster
) -> None:
    expert = await phones.phone(EXPERT, answer("1", dtmf_delay_ms=1500, hangup_after_ms=5000))
    h = await harness(
        service_numbers={SERVICE: {"language": "en", "policy": "fifo"}},
        hold_announce_seconds=5,
    )
    expert_id = await h.expert(EXPERT)
    # The expert is not due yet: the caller holds until the test lets them be rung.
    await h.pool.execute(
        "UPDATE experts SET paused_until = now() + interval '1 hour' WHERE id = $1", expert_id
    )
    kinds = ("PlaybackStarted", "PlaybackFinished", "StasisEnd", "ChannelDestroyed")
    async with AriObserver(h.info, *kinds) as observer:
        caller = await phones.call(
            SERVICE,
            from_number=CALLER.lstrip("+"),
            keys=(Keys(f"{expert_id}#", after_ms=1500),),
            hangup_after_ms=90000,
        )
        channel, request_id = await h.holding_caller()
        # The first announcement ends: the next one falls due while PostgreSQL is away.
        await _until(
            lambda: ("PlaybackFinished", PRESS_1) in _on(observer, channel),
            30,
            f"no announcement heard: {_on(observer, channel)}",
        )
        before_outage = len(observer.events)

        # PostgreSQL away for 8 s; meanwhile Asterisk is asked every half second.
        outage = asyncio.create_task(asyncio.to_thread(pg_cluster.restart, down_for=8))
        seen: list[str] = []
        while not outage.done():
            seen.append((await observer.rest("GET", f"/channels/{channel}"))["state"])
            await asyncio.sleep(0.5)
        await outage
        during = _on(observer, channel, before_outage)
        after_outage = len(observer.events)

        assert len(seen) >= 14 and set(seen) == {"Up"}, seen  # never dropped, never ringing
        assert not [e for e in observer.events if e.get("channel", {}).get("id") == channel], (
            "the caller left the engine during the outage"
        )
        # Announcements skipped (music only): nothing started while PostgreSQL was away.
        assert ("PlaybackStarted", POSITION) not in during, during

        # Back: the announcements resume, then the expert is rung and bridges the caller.
        await _until(
            lambda: ("PlaybackStarted", POSITION) in _on(observer, channel, after_outage),
            15,
            f"no announcement after the outage: {_on(observer, channel, after_outage)}",
        )
        await _db(h, "execute", "UPDATE experts SET paused_until = NULL WHERE id = $1", expert_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 40
        while (
            state := await _db(
                h, "fetchval", "SELECT state FROM requests WHERE id = $1", request_id
            )
        ) != "completed":
            assert loop.time() < deadline, state
            await asyncio.sleep(0.2)
        assert (await expert.finished(20)).ok
        await caller.finished(20)
    c = await h.pool.fetchrow("SELECT * FROM consultations WHERE request_id = $1", request_id)
    assert c["client_channel_id"] == channel  # the holding caller was bridged, not dialled
    assert c["billed_seconds"] >= 1
    row = await h.inbound_ended(channel)
    assert row["outcome"] == "bridged", dict(row)


async def test_caller_hanging_up_while_postgres_is_away_is_a_missed_call_in_place(
    harness: StartHarness, phones: PhoneBook, pg_cluster: ThrowawayCluster
) -> None:
    h = await harness(
        service_numbers={SERVICE: {"language": "en", "policy": "fifo"}},
        hold_announce_seconds=30,
        missed_callback_minutes=0.5,
    )
    expert_id = await h.expert(EXPERT)
    await h.pool.execute(
        "UPDATE experts SET paused_until = now() + interval '1 hour' WHERE id = $1", expert_id
    )
    async with AriObserver(h.info, "PlaybackStarted") as observer:
        caller = await phones.call(
            SERVICE,
            from_number=CALLER.lstrip("+"),
            keys=(Keys(f"{expert_id}#", after_ms=1500),),
            hangup_after_ms=90000,
        )
        channel, request_id = await h.holding_caller()
        await _until(
            lambda: ("PlaybackStarted", POSITION) in _on(observer, channel),
            30,
            f"no announcement heard: {_on(observer, channel)}",
        )
        before = await h.pool.fetchrow("SELECT * FROM requests WHERE id = $1", request_id)
        assert before["holding_channel"] == channel
        outage = asyncio.create_task(asyncio.to_thread(pg_cluster.restart, down_for=6))
        await asyncio.sleep(2)
        # The line drops while PostgreSQL is away (Asterisk hangs the caller up).
        await observer.rest("DELETE", f"/channels/{channel}")
        hung_up = asyncio.get_running_loop().time()
        hung_up_at = datetime.now(UTC)
        await outage
        back = asyncio.get_running_loop().time()
        assert back - hung_up >= 3  # the missed call's write had to wait for PostgreSQL
        await caller.finished(20)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while (r := await _db(h, "fetchrow", "SELECT * FROM requests WHERE id = $1", request_id))[
            "missed_at"
        ] is None:
            assert loop.time() < deadline, dict(r)
            await asyncio.sleep(0.2)
    # The same request keeps its place: still waiting, no longer holding, a callback due.
    assert r["state"] == "waiting" and r["holding_channel"] is None, dict(r)
    assert r["created_at"] == before["created_at"]
    assert r["callback_by"] - r["missed_at"] == timedelta(seconds=30)
    # The promise counts from the hang-up, not from when PostgreSQL came back.
    assert abs((r["missed_at"] - hung_up_at).total_seconds()) < 1, (r["missed_at"], hung_up_at)
    row = await h.inbound_ended(channel)
    assert row["outcome"] == "abandoned", dict(row)
