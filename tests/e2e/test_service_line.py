"""Clients call a service number end to end: SIPp dials in and types the expert's code with
real RFC 2833 DTMF, holds, and is bridged to the expert's SIPp phone; or hangs up while
holding and is called back. Asserts on what Asterisk reports over ARI and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from ivr_devkit.simphones import Keys, PhoneBook, answer, no_answer
from ivr_engine.store import people

from .conftest import AriObserver, Harness

pytestmark = pytest.mark.e2e

SERVICE = "0200000001"
EXPERT = "+390600000161"
CALLER = "+393330000262"
StartHarness = Callable[..., Awaitable[Harness]]
SERVICE_NUMBERS = {SERVICE: {"language": "en", "policy": "new_first"}}


def _played(observer: AriObserver, channel_id: str) -> list[str]:
    """Every media Asterisk reported starting on this channel, in order (a list of media is
    one PlaybackStarted, then a PlaybackContinuing for each next item)."""
    return [
        e["playback"]["media_uri"]
        for e in observer.events
        if e["type"] == "PlaybackStarted" and e["playback"]["target_uri"] == f"channel:{channel_id}"
    ]


async def test_call_in_hold_hear_position_and_be_bridged(
    harness: StartHarness, phones: PhoneBook
) -> None:
    # The expert presses 1 four seconds after answering: the caller hears their place first.
    expert = await phones.phone(EXPERT, answer("1", dtmf_delay_ms=4000, hangup_after_ms=16000))
    h = await harness(service_numbers=SERVICE_NUMBERS, hold_announce_seconds=5)
    expert_id = await h.expert(EXPERT)
    async with AriObserver(h.info, "PlaybackStarted", "PlaybackContinuing") as observer:
        caller = await phones.call(
            SERVICE,
            from_number=CALLER.lstrip("+"),
            keys=(Keys(f"{expert_id}#", after_ms=1500),),
            hangup_after_ms=40000,
        )
        channel, request_id = await h.holding_caller()
        assert await h.wait_state(request_id, "completed", timeout=60) == "completed"
        assert (await expert.finished(20)).ok
        await caller.finished(40)
    played = _played(observer, channel)
    assert "sound:ivr-engine/service_welcome" in played, played
    assert "sound:ivr-engine/hold_position" in played, played
    assert "number:1" in played, played  # first in line
    assert "sound:ivr-engine/client_connecting" in played, played
    c = await h.pool.fetchrow("SELECT * FROM consultations WHERE request_id = $1", request_id)
    assert c["client_channel_id"] == channel  # nobody dialled the client
    assert c["billed_seconds"] >= 1
    k = [a for a in await h.attempts(request_id) if a["leg"] == "client"]
    assert [(a["purpose"], a["outcome"]) for a in k] == [("inbound", "completed")]
    row = await h.inbound_ended(channel)
    assert row["outcome"] == "bridged" and row["bridged_at"] is not None
    assert row["caller"] == CALLER and not row["withheld"]


async def test_hang_up_while_holding_is_called_back(
    harness: StartHarness, phones: PhoneBook
) -> None:
    await phones.phone(EXPERT, no_answer())
    client = await phones.phone(CALLER, answer(hangup_after_ms=6000))
    h = await harness(
        service_numbers=SERVICE_NUMBERS,
        hold_announce_seconds=5,
        missed_callback_minutes=0.5,
        retry_delay=2,
        ring_timeout=3,
        max_attempts=10,
    )
    expert_id = await h.expert(EXPERT)
    caller = await phones.call(
        SERVICE,
        from_number=CALLER.lstrip("+"),
        keys=(Keys(f"{expert_id}#", after_ms=1500),),
        hangup_after_ms=9000,
    )
    channel, request_id = await h.holding_caller()
    await caller.finished(30)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while (r := await h.pool.fetchrow("SELECT * FROM requests WHERE id = $1", request_id))[
        "missed_at"
    ] is None:
        assert loop.time() < deadline, dict(r)
        await asyncio.sleep(0.1)
    assert r["holding_channel"] is None
    assert r["callback_by"] - r["missed_at"] == timedelta(seconds=30)
    # The expert answers now: the missed caller is called back at their own number.
    await phones.replace(EXPERT, answer("1", dtmf_delay_ms=1500))
    assert await h.wait_state(request_id, "completed", timeout=60) == "completed"
    await client.finished(20)
    k = [a for a in await h.attempts(request_id) if a["leg"] == "client"]
    assert k and k[-1]["purpose"] == "connect" and k[-1]["started_at"] <= r["callback_by"]
    assert (await h.inbound_ended(channel))["outcome"] == "abandoned"


async def _pause(h: Harness, expert_id: int, paused: bool) -> None:
    await h.pool.execute(
        "UPDATE experts SET paused_until = CASE WHEN $2 THEN now() + interval '1 hour' END"
        " WHERE id = $1",
        expert_id,
        paused,
    )


async def test_key_1_while_holding_is_called_back_in_place(
    harness: StartHarness, phones: PhoneBook
) -> None:
    await phones.phone(EXPERT, answer("1", dtmf_delay_ms=1500))
    client = await phones.phone(CALLER, answer(hangup_after_ms=5000))
    h = await harness(service_numbers=SERVICE_NUMBERS, hold_announce_seconds=30)
    expert_id = await h.expert(EXPERT)
    await _pause(h, expert_id, True)  # the list is open, nobody is rung yet
    async with AriObserver(h.info, "PlaybackStarted", "PlaybackContinuing") as observer:
        caller = await phones.call(
            SERVICE,
            from_number=CALLER.lstrip("+"),
            # 1 while the announcement's last words (or the music after it) play.
            keys=(Keys(f"{expert_id}#", after_ms=1500), Keys("1", after_ms=10000)),
            hangup_after_ms=30000,
        )
        channel, request_id = await h.holding_caller()
        assert "BYE" in (await caller.finished(40)).received  # the engine said goodbye
    played = _played(observer, channel)
    assert "sound:ivr-engine/hold_press_1" in played, played
    assert played[-1] == "sound:ivr-engine/callback_confirmed", played
    row = await h.pool.fetchrow("SELECT * FROM requests WHERE id = $1", request_id)
    assert row["state"] == "waiting" and row["holding_channel"] is None
    assert row["missed_at"] is None  # chosen, not missed
    await _pause(h, expert_id, False)
    assert await h.wait_state(request_id, "completed", timeout=60) == "completed"
    await client.finished(20)
    k = [a for a in await h.attempts(request_id) if a["leg"] == "client"]
    assert [a["purpose"] for a in k] == ["connect"]  # called back at their number
    assert (await h.inbound_ended(channel))["outcome"] == "callback"


async def test_new_first_serves_the_new_caller_before_an_older_returning_client(
    harness: StartHarness, phones: PhoneBook
) -> None:
    returning_phone = "+393330000263"
    await phones.phone(EXPERT, answer("1", dtmf_delay_ms=1500, hangup_after_ms=9000), calls=2)
    returning = await phones.phone(returning_phone, answer())
    h = await harness(
        service_numbers=SERVICE_NUMBERS, priority_policy="new_first", hold_announce_seconds=30
    )
    expert_id = await h.expert(EXPERT)
    await _pause(h, expert_id, True)
    # The returning client had a consultation before, and asked first (through the API).
    client_id = await people.client_by_phone(h.pool, returning_phone, alias="Old")
    past = await h.pool.fetchval(
        "INSERT INTO requests (expert_id, client_id, state) VALUES ($1, $2, 'completed')"
        " RETURNING id",
        expert_id,
        client_id,
    )
    await h.pool.execute(
        "INSERT INTO consultations (request_id, expert_id, client_id, bridge_id,"
        " expert_channel_id, client_channel_id, rate_per_minute, bridge_start, bridge_end,"
        " billed_seconds) VALUES ($1, $2, $3, 'past', 'e', 'c', 1.50, now(), now(), 60)",
        past,
        expert_id,
        client_id,
    )
    older = await h.request(expert_id, returning_phone, alias="Old")
    kinds = ("PlaybackStarted", "PlaybackContinuing", "PlaybackFinished")
    async with AriObserver(h.info, *kinds) as observer:
        caller = await phones.call(
            SERVICE,
            from_number=CALLER.lstrip("+"),
            keys=(Keys(f"{expert_id}#", after_ms=1500),),
            hangup_after_ms=40000,
        )
        _, newer = await h.holding_caller()
        await _pause(h, expert_id, False)
        try:
            await h.wait_state(newer, "connected", timeout=30)
        except AssertionError as err:
            seen = [
                (
                    e["timestamp"][11:23],
                    e["type"],
                    e["playback"]["media_uri"],
                    e["playback"]["state"],
                )
                for e in observer.events
            ]
            raise AssertionError(f"{err}\n{seen}") from None
    assert (await h.pool.fetchval("SELECT state FROM requests WHERE id = $1", older)) == "waiting"
    assert await h.wait_state(newer, "completed", timeout=30) == "completed"
    await caller.finished(20)
    assert await h.wait_state(older, "completed", "client_unreachable", timeout=40)
    await returning.finished(20)
    first, second = await h.pool.fetch(
        "SELECT request_id FROM consultations WHERE request_id = ANY($1::bigint[])"
        " ORDER BY bridge_start",
        [older, newer],
    )
    assert (first["request_id"], second["request_id"]) == (newer, older)
