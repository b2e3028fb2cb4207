"""No voicemail is ever bridged, end to end: SIPp phones that speak when they answer.

An expert without the accept-by-key prompt is screened by Asterisk's AMD() (the dialplan's
ivr-amd context) before the client is called. A phone playing a voicemail greeting is a
missed call: no bridge (ARI), no consultation, a no-answer attempt, the client never rung.
A phone saying a short "Hello?" and then waiting is a person: bridged. With the prompt, a
voicemail greeting presses no key, which is a missed call too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ivr_devkit.simphones import HELLO, VOICEMAIL_GREETING, PhoneBook, answer

from .conftest import AriObserver, Harness

pytestmark = pytest.mark.e2e

EXPERT = "+390600000161"
CLIENT = "+393330000262"

StartHarness = Callable[..., Awaitable[Harness]]


def _verdicts(ari: AriObserver, channel_id: str) -> list[str]:
    """The AMDSTATUS values Asterisk set on the channel (its ChannelVarset events)."""
    return [e["value"] for e in ari.of("ChannelVarset", channel_id) if e["variable"] == "AMDSTATUS"]


async def _missed(h: Harness, request_id: int, timeout: float) -> Any:
    """Wait until the expert's call is over and the request waits again; its attempt row."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        rows = await h.attempts(request_id)
        if rows and rows[0]["ended_at"] is not None:
            assert await h.wait_state(request_id, "waiting", timeout=5) == "waiting"
            return rows[0]
        assert loop.time() < deadline, f"the expert's call did not end in {timeout} s"
        await asyncio.sleep(0.1)


async def _no_bridge_ever(h: Harness, ari: AriObserver, request_id: int) -> None:
    assert [e for e in ari.events if e["type"] == "ChannelEnteredBridge"] == []
    assert await h.ari("/bridges") == []
    assert await h.pool.fetchval("SELECT count(*) FROM consultations") == 0
    assert (
        await h.pool.fetchval(
            "SELECT count(*) FROM call_attempts WHERE request_id = $1 AND leg = 'client'",
            request_id,
        )
        == 0
    )


async def test_a_voicemail_is_never_bridged(harness: StartHarness, phones: PhoneBook) -> None:
    expert = await phones.phone(EXPERT, answer(greeting=VOICEMAIL_GREETING))
    client = await phones.phone(CLIENT, answer())
    h = await harness(retry_delay=3600)
    async with AriObserver(h.info, "ChannelVarset", "ChannelEnteredBridge") as ari:
        request_id = await h.request(await h.expert(EXPERT, ivr=False), CLIENT)
        a = await _missed(h, request_id, timeout=30)
        assert _verdicts(ari, a["channel_id"]) == ["MACHINE"]
        await _no_bridge_ever(h, ari, request_id)

    assert (a["outcome"], a["answered_at"]) == ("no_answer", None)
    assert a["hangup_text"].startswith("not a person: AMD MACHINE ")
    row = await h.pool.fetchrow(
        "SELECT attempts, next_attempt_at FROM requests WHERE id = $1", request_id
    )
    assert row["attempts"] == 1 and row["next_attempt_at"] is not None  # a missed call
    result = await expert.finished(20)
    assert result.ok and "BYE" in result.received  # the engine hung the machine up
    assert client.invites_received() == 0


async def test_a_person_saying_hello_is_bridged(harness: StartHarness, phones: PhoneBook) -> None:
    # The expert's "Hello?" lasts about 4 s with its silence; hang up 5 s after it.
    expert = await phones.phone(EXPERT, answer(greeting=HELLO, hangup_after_ms=5000))
    await phones.phone(CLIENT, answer())
    h = await harness()
    async with AriObserver(h.info, "ChannelVarset", "ChannelEnteredBridge") as ari:
        request_id = await h.request(await h.expert(EXPERT, ivr=False), CLIENT)
        assert await h.wait_state(request_id, "connected", timeout=30) == "connected"
        bridge_id = await h.pool.fetchval(
            "SELECT bridge_id FROM consultations WHERE request_id = $1", request_id
        )
        bridge: dict[str, Any] = await h.ari(f"/bridges/{bridge_id}")
        e, k = await h.attempts(request_id)
        assert sorted(bridge["channels"]) == sorted([e["channel_id"], k["channel_id"]])
        assert _verdicts(ari, e["channel_id"]) == ["HUMAN"]
        assert await h.wait_state(request_id, "completed", timeout=30) == "completed"

    e, _ = await h.attempts(request_id)
    assert e["outcome"] == "completed" and e["answered_at"] is not None
    assert (await expert.finished(20)).ok


async def test_with_the_prompt_a_voicemail_is_a_missed_call(
    harness: StartHarness, phones: PhoneBook
) -> None:
    await phones.phone(EXPERT, answer(greeting=VOICEMAIL_GREETING))
    client = await phones.phone(CLIENT, answer())
    h = await harness(retry_delay=3600, prompt_tries=1, digit_timeout=1)
    async with AriObserver(h.info, "ChannelVarset", "ChannelEnteredBridge") as ari:
        request_id = await h.request(await h.expert(EXPERT), CLIENT)
        a = await _missed(h, request_id, timeout=40)
        assert _verdicts(ari, a["channel_id"]) == []  # the prompt screens, not AMD()
        await _no_bridge_ever(h, ari, request_id)

    assert (a["outcome"], a["dtmf"], a["choice"]) == ("no_choice", "", None)
    assert client.invites_received() == 0
