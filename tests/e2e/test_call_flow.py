"""The expert-acceptance flow end to end: real Asterisk, real SIP phones, real DTMF.

Each test asserts on what Asterisk showed (bridges and channels over ARI, the SIP messages
each phone saw) and on what PostgreSQL recorded (request state, attempts, consultation).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from ivr_devkit.simphones import HELLO, PhoneBook, PhoneResult, answer, busy, no_answer

from .conftest import Harness, until

pytestmark = pytest.mark.e2e

EXPERT = "+390600000101"
CLIENT = "+393330000202"

StartHarness = Callable[..., Awaitable[Harness]]
KEY_AFTER_MS = 1500


def _received(result: PhoneResult, kind: str) -> datetime:
    """When the phone received its first ``kind`` message."""
    at = next(m.at for m in result.messages if m.direction == "received" and m.kind == kind)
    assert at is not None, result
    return at


def _answered_at(result: PhoneResult) -> datetime:
    """When the phone answered (sent its 200 OK to the INVITE)."""
    at = next(m.at for m in result.messages if m.direction == "sent" and m.kind == "200")
    assert at is not None, result
    return at


async def _bridge_seen(h: Harness, request_id: int) -> dict[str, Any]:
    """Once connected, ask Asterisk for the bridge and return it."""
    await h.wait_state(request_id, "connected", timeout=40)
    bridge_id = await h.pool.fetchval(
        "SELECT bridge_id FROM consultations WHERE request_id = $1", request_id
    )
    bridge: dict[str, Any] = await h.ari(f"/bridges/{bridge_id}")
    return bridge


async def test_expert_accepts_and_client_hangs_up_first(
    harness: StartHarness, phones: PhoneBook
) -> None:
    expert = await phones.phone(EXPERT, answer("1", dtmf_delay_ms=KEY_AFTER_MS))
    # The client hears "connecting you" (about 1.2 s), then talks for about 4 s.
    client = await phones.phone(CLIENT, answer(hangup_after_ms=5500))
    h = await harness()
    expert_id = await h.expert(EXPERT)
    request_id = await h.request(expert_id, CLIENT)

    bridge = await _bridge_seen(h, request_id)
    attempts = await h.attempts(request_id)
    assert sorted(bridge["channels"]) == sorted(a["channel_id"] for a in attempts)
    assert bridge["bridge_type"] == "mixing"

    assert await h.wait_state(request_id, "completed") == "completed"
    expert_phone = await expert.finished(20)
    client_phone = await client.finished(20)
    assert expert_phone.ok and client_phone.ok
    # The client is rung on the key, while the expert hears "connecting you" (about 4 s).
    key_at = _received(expert_phone, "ACK") + timedelta(milliseconds=KEY_AFTER_MS)
    ring_at = _received(client_phone, "INVITE")
    assert ring_at - key_at < timedelta(seconds=1), (key_at, ring_at)
    c = await h.pool.fetchrow("SELECT * FROM consultations WHERE request_id = $1", request_id)
    assert c["ended_by"] == "client"
    # Bridged after the short announcement, not a long prompt.
    assert c["bridge_start"] - _answered_at(client_phone) < timedelta(seconds=2.5)
    assert 2 <= c["billed_seconds"] <= 7
    assert c["bridge_end"] > c["bridge_start"]
    e, k = await h.attempts(request_id)
    assert (e["leg"], e["purpose"], e["dtmf"], e["choice"]) == ("expert", "offer", "1", "1")
    assert (k["leg"], k["purpose"], k["outcome"]) == ("client", "connect", "completed")
    assert e["answered_at"] is not None and k["answered_at"] is not None
    # Nothing left behind in Asterisk (the bridge goes once the bill is written).
    assert await until(lambda: h.ari("/bridges"), lambda bridges: bridges == []) == []
    await until(
        lambda: h.ari("/channels"), lambda chs: all(not c["id"].startswith("ivr-") for c in chs)
    )


async def test_expert_refuses_and_client_is_told(harness: StartHarness, phones: PhoneBook) -> None:
    expert = await phones.phone(EXPERT, answer("3", dtmf_delay_ms=1500))
    client = await phones.phone(CLIENT, answer())
    h = await harness()
    request_id = await h.request(await h.expert(EXPERT), CLIENT)

    assert await h.wait_state(request_id, "refused") == "refused"
    assert (await expert.finished(20)).ok
    result = await client.finished(30)
    assert result.ok and "BYE" in result.received  # the engine told the client, then hung up
    # The client's attempt is recorded once Asterisk has confirmed its hang-up.
    e, k = await h.attempts_ended(request_id, 2)
    assert (e["choice"], e["outcome"]) == ("3", "refused")
    assert (k["purpose"], k["outcome"]) == ("notify_refused", "told_declined")
    assert await h.pool.fetchval("SELECT count(*) FROM consultations") == 0


async def test_invalid_key_then_valid_key(harness: StartHarness, phones: PhoneBook) -> None:
    await phones.phone(EXPERT, answer("51", dtmf_delay_ms=1500, digit_gap_ms=3500))
    await phones.phone(CLIENT, answer(hangup_after_ms=6500))
    h = await harness()
    request_id = await h.request(await h.expert(EXPERT), CLIENT)
    assert await h.wait_state(request_id, "completed", timeout=60) == "completed"
    e = (await h.attempts(request_id))[0]
    assert (e["dtmf"], e["choice"]) == ("51", "1")


async def test_acceptance_ivr_disabled_bridges_on_answer(
    harness: StartHarness, phones: PhoneBook
) -> None:
    # A person says hello (answering-machine detection, test_machine_detection.py).
    await phones.phone(EXPERT, answer(greeting=HELLO, hangup_after_ms=6000))
    await phones.phone(CLIENT, answer())
    h = await harness()
    request_id = await h.request(await h.expert(EXPERT, ivr=False), CLIENT)
    bridge = await _bridge_seen(h, request_id)
    assert len(bridge["channels"]) == 2
    assert await h.wait_state(request_id, "completed") == "completed"
    e, _ = await h.attempts(request_id)
    assert e["dtmf"] == "" and e["choice"] is None
    c = await h.pool.fetchrow(
        "SELECT ended_by FROM consultations WHERE request_id = $1", request_id
    )
    assert c["ended_by"] == "expert"


async def test_expert_hangs_up_first(harness: StartHarness, phones: PhoneBook) -> None:
    await phones.phone(EXPERT, answer("1", dtmf_delay_ms=1000, hangup_after_ms=14000))
    client = await phones.phone(CLIENT, answer())
    h = await harness()
    request_id = await h.request(await h.expert(EXPERT), CLIENT)
    assert await h.wait_state(request_id, "completed", timeout=60) == "completed"
    result = await client.finished(20)
    assert result.ok and "BYE" in result.received  # the engine hung the client up
    c = await h.pool.fetchrow("SELECT * FROM consultations WHERE request_id = $1", request_id)
    assert c["ended_by"] == "expert" and c["billed_seconds"] >= 1


async def test_expert_no_answer_then_retry(harness: StartHarness, phones: PhoneBook) -> None:
    first = await phones.phone(EXPERT, no_answer())
    await phones.phone(CLIENT, answer(hangup_after_ms=6500))
    h = await harness(ring_timeout=3, retry_delay=2)
    request_id = await h.request(await h.expert(EXPERT), CLIENT)

    result = await first.finished(30)
    assert "CANCEL" in result.received  # Asterisk gave up ringing after the ring timeout
    # The retry comes IVR_RETRY_DELAY (2 s) after the missed call: the phone that answers it
    # is started first, the checks of the missed call follow.
    await phones.replace(EXPERT, answer("1", dtmf_delay_ms=1000))
    # Back in the list (the request may already be rung again).
    await until(
        lambda: h.pool.fetchval(
            "SELECT count(*) FROM request_events WHERE request_id = $1"
            " AND from_state = 'ringing_expert' AND to_state = 'waiting'",
            request_id,
        ),
        lambda moves: moves >= 1,
    )
    missed = (await h.attempts(request_id))[0]
    assert missed["outcome"] == "no_answer" and missed["answered_at"] is None
    outbox = await h.pool.fetch("SELECT kind, to_address FROM outbox_emails")
    assert [(r["kind"], r["to_address"]) for r in outbox] == [
        ("expert_missed_call", "anna@example.org")
    ]

    assert await h.wait_state(request_id, "completed", timeout=60) == "completed"
    view = await h.pool.fetchrow("SELECT attempts FROM requests WHERE id = $1", request_id)
    assert view["attempts"] == 2


async def test_expert_busy_then_solicit(harness: StartHarness, phones: PhoneBook) -> None:
    first = await phones.phone(EXPERT, busy())
    await phones.phone(CLIENT, answer(hangup_after_ms=6500))
    h = await harness(retry_delay=3600)  # only the solicit can bring the call back
    request_id = await h.request(await h.expert(EXPERT), CLIENT)

    assert "486" in (await first.finished(20)).sent
    await h.wait_state(request_id, "waiting")
    a = (await h.attempts(request_id))[0]
    assert (a["outcome"], a["hangup_cause"]) == ("busy", 17)

    await phones.replace(EXPERT, answer("1", dtmf_delay_ms=1000))
    status, body = await h.api("POST", f"/api/v1/requests/{request_id}/solicit")
    assert status == 202, body
    assert await h.wait_state(request_id, "completed", timeout=60) == "completed"


async def test_client_no_answer(harness: StartHarness, phones: PhoneBook) -> None:
    expert = await phones.phone(EXPERT, answer("1", dtmf_delay_ms=1000))
    client = await phones.phone(CLIENT, no_answer())
    h = await harness(ring_timeout=3)
    request_id = await h.request(await h.expert(EXPERT), CLIENT)
    assert await h.wait_state(request_id, "client_unreachable", timeout=40)
    assert "CANCEL" in (await client.finished(20)).received
    result = await expert.finished(20)
    assert "BYE" in result.received  # told, then hung up by the engine
    _, k = await h.attempts(request_id)
    assert k["outcome"] == "no_answer"


async def test_client_leaves_while_expert_rings(harness: StartHarness, phones: PhoneBook) -> None:
    expert = await phones.phone(EXPERT, no_answer())
    h = await harness(ring_timeout=20)
    request_id = await h.request(await h.expert(EXPERT), CLIENT)
    await h.wait_state(request_id, "ringing_expert")
    await expert.wait_received("INVITE", timeout=10)
    status, body = await h.api("DELETE", f"/api/v1/requests/{request_id}")
    assert status == 200 and body["state"] == "lost" and body["end_reason"] == "client_left"
    assert "CANCEL" in (await expert.finished(10)).received  # the ringing stopped at once
    # The flow's clean-up records the cancelled call once Asterisk confirmed its end.
    a = (await h.attempts_ended(request_id, 1))[0]
    assert a["outcome"] == "cancelled"


async def test_two_requests_race_for_one_expert(harness: StartHarness, phones: PhoneBook) -> None:
    other = "+393330000303"
    expert = await phones.phone(EXPERT, answer("1", dtmf_delay_ms=800), calls=2)
    await phones.phone(CLIENT, answer(hangup_after_ms=6000))
    await phones.phone(other, answer(hangup_after_ms=6000))
    h = await harness()
    expert_id = await h.expert(EXPERT)
    ids = await asyncio.gather(h.request(expert_id, CLIENT), h.request(expert_id, other))
    for request_id in ids:
        assert await h.wait_state(request_id, "completed", timeout=90) == "completed"
    assert (await expert.finished(20)).ok
    rows = await h.pool.fetch(
        "SELECT started_at, ended_at FROM call_attempts WHERE leg = 'expert' ORDER BY started_at"
    )
    assert len(rows) == 2
    assert rows[0]["ended_at"] <= rows[1]["started_at"]  # never rung twice at once
