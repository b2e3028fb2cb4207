"""Category requests end to end: three SIPp experts rung at once through the sandbox
Asterisk, real RFC 2833 DTMF. Asserted on what Asterisk reported (the playbacks it started
on each channel, the bridge) and on what PostgreSQL recorded."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from ivr_devkit.simphones import PhoneBook, answer, busy

from .conftest import AriObserver, Harness, until

pytestmark = pytest.mark.e2e

EXPERTS = ("+390600000131", "+390600000132", "+390600000133")
CLIENT = "+393330000232"

StartHarness = Callable[..., Awaitable[Harness]]


async def _experts(h: Harness) -> list[int]:
    ids = [await h.expert(phone) for phone in EXPERTS]
    await h.pool.execute("UPDATE experts SET category = 'cartomancy'")
    return ids


async def _ask(h: Harness) -> int:
    status, body = await h.api(
        "POST",
        "/api/v1/requests",
        {"category": "cartomancy", "client_phone": CLIENT, "client_alias": "Marco"},
    )
    assert status == 201, body
    return int(body["id"])


def _played(observer: AriObserver, channel_id: str) -> list[str]:
    """The media of every playback Asterisk started on the channel."""
    return [
        e["playback"]["media_uri"]
        for e in observer.events
        if e["type"] == "PlaybackStarted" and e["playback"]["target_uri"] == f"channel:{channel_id}"
    ]


async def test_two_experts_press_1_ms_apart_one_wins_the_others_are_told_and_released(
    harness: StartHarness, phones: PhoneBook
) -> None:
    first = await phones.phone(EXPERTS[0], answer("1", dtmf_delay_ms=1500))
    second = await phones.phone(EXPERTS[1], answer("1", dtmf_delay_ms=1505))
    silent = await phones.phone(EXPERTS[2], answer())
    client = await phones.phone(CLIENT, answer(hangup_after_ms=3000))
    h = await harness()
    experts = await _experts(h)
    async with AriObserver(h.info, "PlaybackStarted") as observer:
        request_id = await _ask(h)
        assert await h.wait_state(request_id, "completed") == "completed"
        results = [await p.finished(30) for p in (first, second, silent, client)]
    assert all(r.ok for r in results), [str(r) for r in results]

    winner = await h.pool.fetchval("SELECT expert_id FROM requests WHERE id = $1", request_id)
    assert winner in experts[:2]
    # A loser's offer ends once Asterisk confirmed its hang-up, which may come after the
    # winner's consultation completed and after its phone saw the BYE.
    offered = await until(
        lambda: h.pool.fetch(
            "SELECT o.expert_id, o.state, a.channel_id FROM offers o"
            " JOIN call_attempts a ON a.request_id = o.request_id AND a.leg = 'expert'"
            " AND a.dial_string LIKE '%' || (SELECT phone FROM experts WHERE id = o.expert_id)"
            " || '%' WHERE o.request_id = $1",
            request_id,
        ),
        lambda rows: all(r["state"] != "ringing" for r in rows),
    )
    assert sorted(r["state"] for r in offered) == ["taken", "taken", "won"]
    for row in offered:
        media = _played(observer, row["channel_id"])
        assert any("offer_request_from" in m for m in media), media
        assert any("already_taken" in m for m in media) == (row["expert_id"] != winner), media
    # One consultation, the winner's; nobody else billed, nobody counted as missing it.
    rows = await h.pool.fetch("SELECT expert_id FROM consultations")
    assert [r["expert_id"] for r in rows] == [winner]
    assert (
        await h.pool.fetchval("SELECT count(*) FROM experts WHERE unreachable_until IS NOT NULL")
        == 0
    )
    assert await until(lambda: h.ari("/channels"), lambda channels: channels == []) == []


async def test_every_expert_refuses_then_a_request_expires(
    harness: StartHarness, phones: PhoneBook
) -> None:
    refusing = [await phones.phone(p, answer("3", dtmf_delay_ms=1500)) for p in EXPERTS]
    h = await harness(request_ttl_hours=3 / 3600)
    await _experts(h)
    request_id = await _ask(h)
    assert await h.wait_state(request_id, "refused") == "refused"
    for phone in refusing:
        assert (await phone.finished(20)).ok
    row = await h.pool.fetchrow(
        "SELECT end_reason, expert_id FROM requests WHERE id = $1", request_id
    )
    assert (row["end_reason"], row["expert_id"]) == ("all_refused", None)
    states = await h.pool.fetch("SELECT state FROM offers WHERE request_id = $1", request_id)
    assert [r["state"] for r in states] == ["refused"] * 3

    # With every expert paused, the next request waits, then expires after the (shortened)
    # IVR_REQUEST_TTL_HOURS: lost, reason expired, the client emailed.
    await h.pool.execute("UPDATE experts SET paused_until = now() + interval '1 hour'")
    status, body = await h.api(
        "POST",
        "/api/v1/requests",
        {"category": "cartomancy", "client_phone": CLIENT, "client_email": "marco@example.org"},
    )
    assert status == 201 and body["expected_delay_seconds"] > 0, body
    assert await h.wait_state(body["id"], "lost", timeout=15) == "lost"
    expired = await h.pool.fetchrow("SELECT end_reason FROM requests WHERE id = $1", body["id"])
    assert expired["end_reason"] == "expired"
    kinds = await h.pool.fetch("SELECT kind FROM outbox_emails WHERE request_id = $1", body["id"])
    assert [k["kind"] for k in kinds] == ["client_request_closed"]
    await asyncio.sleep(0)  # nothing was dialled for it
    assert (
        await h.pool.fetchval(
            "SELECT count(*) FROM call_attempts WHERE request_id = $1", body["id"]
        )
        == 0
    )


async def test_the_client_busy_at_first_is_called_again_and_bridged(
    harness: StartHarness, phones: PhoneBook
) -> None:
    expert = await phones.phone(EXPERTS[0], answer("1", dtmf_delay_ms=1500))
    client = await phones.phone(CLIENT, busy())
    h = await harness(client_attempts=3, client_retry_delay=2)
    await _experts(h)
    await h.pool.execute("DELETE FROM experts WHERE phone <> $1", EXPERTS[0])
    request_id = await _ask(h)
    assert "486" in (await client.finished(30)).sent  # busy on the first call
    again = await phones.replace(CLIENT, answer(hangup_after_ms=2000))

    assert await h.wait_state(request_id, "completed") == "completed"
    assert (await again.finished(20)).ok and (await expert.finished(20)).ok
    calls = [a for a in await h.attempts(request_id) if a["leg"] == "client"]
    assert [(a["outcome"], a["hangup_cause"]) for a in calls][:1] == [("busy", 17)]
    assert len(calls) == 2 and calls[1]["outcome"] == "completed"
    gap = (calls[1]["started_at"] - calls[0]["ended_at"]).total_seconds()
    assert gap >= 2  # IVR_CLIENT_RETRY_DELAY, the expert holding meanwhile
