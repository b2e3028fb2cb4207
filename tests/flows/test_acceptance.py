"""The expert-acceptance flow, call by call, on the fake ARI: what the phones heard and did,
and what PostgreSQL recorded (request, events, attempts, consultation and bill, outbox)."""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta
from decimal import Decimal

import pytest

from ivr_engine.calls.control import ROUTED_EVENTS
from ivr_engine.domain.media import RTP_TIMEOUT_CAUSE
from tests.fakes import Phone, answers, busy, never_answers, refuses

from .conftest import APP, CLIENT, EXPERT, StartFlows

pytestmark = pytest.mark.flows


async def test_expert_accepts_and_hangs_up_first(flows: StartFlows) -> None:
    h = await flows(billing_minimum=60)
    h.fake.phone(EXPERT, answers(press="1", hang_up_in_bridge_after=0.3))
    h.fake.phone(CLIENT, answers())
    request_id = await h.request(await h.expert())

    assert await h.settled(request_id, "completed") == "completed"

    expert, client = h.fake.dialled(EXPERT) + h.fake.dialled(CLIENT)
    assert expert.hung_up_by == "phone" and client.hung_up_by == "engine"
    assert h.heard(expert, "offer_request_from") and h.heard(expert, "connecting_you")
    assert h.heard(client, "client_connecting")
    assert expert.moh_started == 1
    assert "characters:Marco" in expert.media
    bridge_adds = h.fake.requests("POST", f"/bridges/ivr-{request_id}-bridge/addChannel")
    assert bridge_adds[0].params["channel"] == f"{expert.id},{client.id}"
    assert h.fake.requests("DELETE", f"/bridges/ivr-{request_id}-bridge")[0].status == 204

    row = await h.row(request_id)
    assert (row["state"], row["end_reason"], row["attempts"]) == ("completed", "ended by expert", 1)
    assert [e[1:] for e in await h.events(request_id)] == [
        ("waiting", "created"),
        ("ringing_expert", "attempt 1"),
        ("ringing_client", "expert_accepted"),
        ("connected", "bridged"),
        ("completed", "ended by expert"),
    ]
    e, k = await h.attempts(request_id)
    assert (e["leg"], e["purpose"], e["channel_id"]) == ("expert", "offer", expert.id)
    assert (e["outcome"], e["dtmf"], e["choice"], e["hangup_cause"]) == ("completed", "1", "1", 16)
    assert (k["leg"], k["purpose"], k["channel_id"]) == ("client", "connect", client.id)
    assert (k["outcome"], k["choice"], k["hangup_cause"]) == ("completed", None, 16)
    assert all(a["answered_at"] and a["ended_at"] for a in (e, k))
    assert e["dial_string"] == f"PJSIP/{EXPERT}@ivr-trunk"

    c = await h.consultation(request_id)
    assert c is not None
    assert (c["ended_by"], c["expert_channel_id"], c["client_channel_id"]) == (
        "expert",
        expert.id,
        client.id,
    )
    bridged = (c["bridge_end"] - c["bridge_start"]).total_seconds()
    assert bridged >= 0.3 and c["billed_seconds"] == math.ceil(
        round(bridged, 3)
    )  # a started second counts
    assert c["charged_seconds"] == 60  # billing_minimum
    assert c["client_price"] == Decimal("1.50")
    assert c["earnings"] == c["client_price"] - c["transfer_cost"] - c["commission"]
    assert await h.emails(request_id) == ["consultation_earnings"]


async def test_client_hangs_up_first(flows: StartFlows) -> None:
    h = await flows()
    h.fake.phone(EXPERT, answers(press="1"))
    h.fake.phone(CLIENT, answers(hang_up_in_bridge_after=0.2))
    request_id = await h.request(await h.expert())

    assert await h.settled(request_id, "completed") == "completed"

    (expert,) = h.fake.dialled(EXPERT)
    (client,) = h.fake.dialled(CLIENT)
    assert (expert.hung_up_by, client.hung_up_by) == ("engine", "phone")
    row = await h.row(request_id)
    assert row["end_reason"] == "ended by client"
    e, k = await h.attempts(request_id)
    assert (e["outcome"], k["outcome"]) == ("completed", "completed")
    c = await h.consultation(request_id)
    assert c is not None and c["ended_by"] == "client" and c["billed_seconds"] >= 1
    assert c["bridge_end"] > c["bridge_start"]
    assert await h.emails(request_id) == ["consultation_earnings"]


async def test_expert_refuses_and_client_is_told(flows: StartFlows) -> None:
    h = await flows()
    h.fake.phone(EXPERT, answers(press="3"))
    h.fake.phone(CLIENT, answers())
    request_id = await h.request(await h.expert())

    assert await h.settled(request_id, "refused") == "refused"

    (expert,) = h.fake.dialled(EXPERT)
    (client,) = h.fake.dialled(CLIENT)
    assert h.heard(expert, "refused_goodbye")
    assert h.heard(client, "client_expert_declined")
    assert not h.heard(client, "client_connecting")
    assert (expert.hung_up_by, client.hung_up_by) == ("engine", "engine")
    row = await h.row(request_id)
    assert row["end_reason"] == "expert_refused"
    e, k = await h.attempts(request_id)
    assert (e["outcome"], e["choice"], e["dtmf"]) == ("refused", "3", "3")
    assert (k["leg"], k["purpose"], k["outcome"]) == ("client", "notify_refused", "told_declined")
    assert await h.consultation(request_id) is None
    assert h.fake.requests("POST", "/bridges/*") == []


async def test_invalid_key_is_refused_then_a_valid_one_counts(flows: StartFlows) -> None:
    h = await flows()
    h.fake.phone(EXPERT, answers(press="51", key_gap=0.1, hang_up_in_bridge_after=0.1))
    h.fake.phone(CLIENT, answers())
    request_id = await h.request(await h.expert())

    assert await h.settled(request_id, "completed") == "completed"
    (expert,) = h.fake.dialled(EXPERT)
    assert h.heard(expert, "invalid_key")
    e, _ = await h.attempts(request_id)
    assert (e["dtmf"], e["choice"]) == ("51", "1")


async def test_expert_never_answers_is_retried_later(flows: StartFlows) -> None:
    h = await flows(ring_timeout=1, retry_delay=60)
    h.fake.phone(EXPERT, never_answers())
    expert_id = await h.expert()
    request_id = await h.request(expert_id)

    assert await h.settled(request_id, "waiting", timeout=5) == "waiting"

    (expert,) = h.fake.dialled(EXPERT)
    assert h.fake.requests("POST", "/channels")[0].params["timeout"] == "1"
    assert (expert.hung_up_by, expert.cause) == ("network", 19)
    assert expert.answered_at is None and h.fake.dialled(CLIENT) == []
    row = await h.row(request_id)
    assert row["attempts"] == 1
    (a,) = await h.attempts(request_id)
    assert (a["outcome"], a["hangup_cause"], a["answered_at"]) == ("no_answer", 19, None)
    assert (await h.events(request_id))[-1] == ("ringing_expert", "waiting", "no_answer")
    # Not rung again before retry_delay: both the request and the expert say so.
    gap = await h.pool.fetchval(
        "SELECT extract(epoch FROM r.next_attempt_at - now()) FROM requests r WHERE r.id = $1",
        request_id,
    )
    assert 50 < gap <= 60
    unreachable = (await h.expert_row(expert_id))["unreachable_until"]
    assert abs((unreachable - row["next_attempt_at"]).total_seconds()) < 1
    assert await h.emails(request_id) == ["expert_missed_call"]


async def test_busy_expert_is_retried_then_the_request_is_lost(flows: StartFlows) -> None:
    h = await flows(retry_delay=0.1, max_attempts=2)
    h.fake.phone(EXPERT, busy())
    request_id = await h.request(await h.expert())

    assert await h.settled(request_id, "lost") == "lost"

    first, second = h.fake.dialled(EXPERT)
    assert first.cause == second.cause == 17
    assert first.destroyed_at is not None and second.created_at >= first.destroyed_at
    row = await h.row(request_id)
    assert (row["attempts"], row["end_reason"]) == (2, "expert_unreachable")
    assert [a["outcome"] for a in await h.attempts(request_id)] == ["busy", "busy"]
    assert [e[1:] for e in await h.events(request_id)] == [
        ("waiting", "created"),
        ("ringing_expert", "attempt 1"),
        ("waiting", "busy"),
        ("ringing_expert", "attempt 2"),
        ("lost", "expert_unreachable"),
    ]
    assert await h.emails(request_id) == ["expert_missed_call", "expert_missed_request_lost"]
    assert h.fake.dialled(CLIENT) == []


async def test_no_key_pressed(flows: StartFlows) -> None:
    h = await flows(digit_timeout=0.2, prompt_tries=2)
    h.fake.phone(EXPERT, answers())
    request_id = await h.request(await h.expert())

    assert await h.settled(request_id, "waiting") == "waiting"

    (expert,) = h.fake.dialled(EXPERT)
    offers = [m for m in expert.played if "sound:ivr-engine/offer_request_from" in m]
    assert len(offers) == 2  # prompt_tries
    assert h.heard(expert, "no_choice_goodbye") and expert.hung_up_by == "engine"
    (a,) = await h.attempts(request_id)
    assert (a["outcome"], a["dtmf"], a["choice"]) == ("no_choice", "", None)
    assert (await h.events(request_id))[-1] == ("ringing_expert", "waiting", "no_choice")
    assert h.fake.dialled(CLIENT) == []
    assert await h.emails(request_id) == ["expert_missed_call"]


async def test_expert_hangs_up_while_the_client_rings(flows: StartFlows) -> None:
    h = await flows(ring_timeout=5)
    h.fake.phone(EXPERT, answers(press="1"))
    h.fake.phone(CLIENT, never_answers())
    request_id = await h.request(await h.expert())

    await h.fake.wait_until(
        lambda: any(c.state == "Ringing" for c in h.fake.dialled(CLIENT)), what="client ringing"
    )
    (expert,) = h.fake.dialled(EXPERT)
    h.fake.hang_up(expert.id)

    assert await h.settled(request_id, "lost") == "lost"
    (client,) = h.fake.dialled(CLIENT)
    assert client.hung_up_by == "engine" and client.answered_at is None
    assert h.fake.requests("DELETE", f"/channels/{client.id}")
    row = await h.row(request_id)
    assert row["end_reason"] == "expert_hung_up"
    e, k = await h.attempts(request_id)
    assert (e["outcome"], e["choice"]) == ("hung_up_before_bridge", "1")
    assert k["outcome"] == "cancelled"
    assert await h.consultation(request_id) is None


async def test_expert_hangs_up_as_the_music_starts(flows: StartFlows) -> None:
    h = await flows(ring_timeout=5)
    h.fake.phone(EXPERT, answers(press="1"))
    h.fake.phone(CLIENT, never_answers())
    h.fake.when("POST", "/channels/*/moh", lambda: h.fake.hang_up(h.fake.dialled(EXPERT)[0].id))
    request_id = await h.request(await h.expert())

    assert await h.settled(request_id, "lost") == "lost"
    assert [c.status for c in h.fake.requests("POST", "/channels/*/moh")] == [404]
    # The client was already ringing (dialled on the key): its ringing is stopped.
    (client,) = h.fake.dialled(CLIENT)
    assert client.hung_up_by == "engine" and client.answered_at is None
    assert (await h.row(request_id))["end_reason"] == "expert_hung_up"
    e, k = await h.attempts(request_id)
    assert (e["outcome"], e["choice"], e["hangup_cause"]) == ("hung_up_before_bridge", "1", 16)
    assert k["outcome"] == "cancelled"


async def test_the_client_is_dialled_on_the_key_while_the_expert_holds(
    flows: StartFlows,
) -> None:
    """Key 1 dials the client at once: "connecting you" and the music play while it rings,
    and the client hears only the short announcement before the bridge."""
    h = await flows(ring_timeout=5)
    h.fake.playback_seconds = 0.3  # "connecting you" lasts long enough to be seen playing
    h.fake.phone(EXPERT, answers(press="1", hang_up_in_bridge_after=0.1))
    h.fake.phone(CLIENT, never_answers())
    request_id = await h.request(await h.expert())

    await h.fake.wait_until(lambda: bool(h.fake.dialled(CLIENT)), what="client dialled")
    (expert,) = h.fake.dialled(EXPERT)
    (client,) = h.fake.dialled(CLIENT)
    await h.fake.wait_until(lambda: expert.moh_class is not None, what="music on hold")
    (connecting,) = h.fake.requests("POST", f"/channels/{expert.id}/play/*")[1:]
    assert connecting.params["media"] == "sound:ivr-engine/connecting_you"
    (moh,) = h.fake.requests("POST", "/channels/*/moh")
    # Rung while "connecting you" played, not after it.
    assert client.created_at < moh.at - timedelta(seconds=0.2)
    h.fake.answer(client.id)

    assert await h.settled(request_id, "completed") == "completed"
    assert client.media == ["sound:ivr-engine/client_connecting"]
    assert expert.moh_class is None and expert.moh_started == 1
    assert [e[1:] for e in await h.events(request_id)][2:4] == [
        ("ringing_client", "expert_accepted"),
        ("connected", "bridged"),
    ]


@pytest.mark.parametrize(
    ("script", "outcome", "cause"),
    [(busy(), "busy", 17), (never_answers(network_gives_up_after=0.05), "no_answer", 19)],
    ids=["busy", "no_answer"],
)
async def test_client_unreachable(
    flows: StartFlows, script: Phone, outcome: str, cause: int
) -> None:
    h = await flows()
    h.fake.phone(EXPERT, answers(press="1"))
    h.fake.phone(CLIENT, script)
    request_id = await h.request(await h.expert())

    assert await h.settled(request_id, "client_unreachable") == "client_unreachable"

    (expert,) = h.fake.dialled(EXPERT)
    assert h.heard(expert, "client_unreachable_expert") and expert.hung_up_by == "engine"
    assert expert.moh_class is None  # the music stopped before the message
    e, k = await h.attempts(request_id)
    assert (e["outcome"], e["choice"]) == ("client_unreachable", "1")
    assert (k["outcome"], k["hangup_cause"]) == (outcome, cause)
    assert await h.consultation(request_id) is None
    assert await h.emails(request_id) == ["client_request_closed"]  # the client is told


async def test_without_acceptance_ivr_the_client_is_called_at_once(flows: StartFlows) -> None:
    h = await flows()
    h.fake.phone(EXPERT, answers(hang_up_in_bridge_after=0.1))
    h.fake.phone(CLIENT, answers())
    request_id = await h.request(await h.expert(ivr=False))

    assert await h.settled(request_id, "completed") == "completed"

    (expert,) = h.fake.dialled(EXPERT)
    assert expert.played == []  # no offer, no "connecting you": music, then the client
    assert expert.moh_started == 1
    e, k = await h.attempts(request_id)
    assert (e["outcome"], e["choice"], e["dtmf"]) == ("completed", None, "")
    assert k["outcome"] == "completed"


async def test_refused_originate_is_a_failed_attempt(flows: StartFlows) -> None:
    h = await flows()
    h.fake.phone(EXPERT, refuses(500))
    request_id = await h.request(await h.expert())

    assert await h.settled(request_id, "waiting") == "waiting"

    assert h.fake.dialled(EXPERT) == []  # Asterisk made no channel
    assert [c.status for c in h.fake.requests("POST", "/channels")] == [500]
    (a,) = await h.attempts(request_id)
    assert (a["outcome"], a["hangup_text"]) == ("failed", "originate refused")
    assert (await h.events(request_id))[-1] == ("ringing_expert", "waiting", "no_answer")


async def test_client_hangs_up_during_the_announcement(flows: StartFlows) -> None:
    h = await flows()
    h.fake.phone(EXPERT, answers(press="1"))
    h.fake.phone(CLIENT, answers(hang_up_after=0.01))
    expert_id = await h.expert()
    request_id = await h.request(expert_id)

    assert await h.settled(request_id, "lost") == "lost"
    (expert,) = h.fake.dialled(EXPERT)
    assert h.heard(expert, "client_unreachable_expert") and expert.hung_up_by == "engine"
    assert (await h.row(request_id))["end_reason"] == "client_hung_up"
    e, k = await h.attempts(request_id)
    assert (e["outcome"], e["choice"]) == ("client_hung_up_before_bridge", "1")
    assert k["outcome"] == "hung_up_before_bridge" and k["answered_at"] is not None
    assert h.fake.requests("POST", "/bridges/*") == []
    assert await h.emails(request_id) == []
    assert (await h.expert_row(expert_id))["unreachable_until"] is None


async def test_client_hangs_up_as_the_bridge_is_made(flows: StartFlows) -> None:
    h = await flows()
    h.fake.phone(EXPERT, answers(press="1"))
    h.fake.phone(CLIENT, answers())
    expert_id = await h.expert()
    # The client hangs up after the announcement, as the engine creates the bridge.
    h.fake.when("POST", "/bridges/*", lambda: h.fake.hang_up(h.fake.dialled(CLIENT)[0].id))
    request_id = await h.request(expert_id)

    await h.settled(request_id, "lost", "waiting", "failed")
    # As when the client hangs up during the prompt just before: lost, nobody blamed.
    row = await h.row(request_id)
    assert (row["state"], row["end_reason"]) == ("lost", "client_hung_up")
    e, _ = await h.attempts(request_id)
    assert e["choice"] == "1"
    assert await h.emails(request_id) == []
    assert (await h.expert_row(expert_id))["unreachable_until"] is None


async def test_a_bridge_asterisk_cannot_make_leaves_nothing_behind(flows: StartFlows) -> None:
    h = await flows()
    h.fake.phone(EXPERT, answers(press="1", hang_up_in_bridge_after=0.05))
    h.fake.phone(CLIENT, answers())
    h.fake.fail("POST", "/bridges/*", status=500)
    request_id = await h.request(await h.expert())

    # An engine-side error: retried at once, uncounted, and the second try is bridged.
    assert await h.settled(request_id, "completed") == "completed"
    made = h.fake.requests("POST", f"/bridges/ivr-{request_id}-bridge")
    assert [c.status for c in made] == [500, 200]
    assert h.calls.bridge_entries == {}
    assert (await h.row(request_id))["attempts"] == 1


async def test_the_longest_consultation_is_warned_then_ended_and_billed(
    flows: StartFlows,
) -> None:
    h = await flows(max_consultation_minutes=0.05)  # 3 s: the warning comes at once
    h.fake.phone(EXPERT, answers(press="1"))
    h.fake.phone(CLIENT, answers())
    request_id = await h.request(await h.expert())

    assert await h.settled(request_id, "completed", timeout=10) == "completed"

    c = await h.consultation(request_id)
    assert c is not None and c["ended_by"] == "time_limit"
    assert 2 <= c["billed_seconds"] <= 4
    bridge = h.fake.history_bridges[f"ivr-{request_id}-bridge"]
    assert [m for play in bridge.played for m in play] == ["sound:ivr-engine/consultation_ending"]
    (expert,), (client,) = h.fake.dialled(EXPERT), h.fake.dialled(CLIENT)
    assert expert.hung_up_by == client.hung_up_by == "engine"


async def test_a_leg_hung_up_for_silence_is_billed_until_its_media_stopped(
    flows: StartFlows,
) -> None:
    """Asterisk's rtp_timeout hung the client up (cause 44): the last rtp_timeout seconds
    carried nothing, and are not billed."""
    h = await flows(rtp_timeout=2.0)
    h.fake.phone(EXPERT, answers(press="1"))
    h.fake.phone(CLIENT, answers())
    request_id = await h.request(await h.expert())
    await h.wait_state(request_id, "connected")
    await asyncio.sleep(3.2)
    h.fake.hang_up(h.fake.dialled(CLIENT)[0].id, cause=RTP_TIMEOUT_CAUSE)

    assert await h.settled(request_id, "completed") == "completed"
    c = await h.consultation(request_id)
    assert c is not None and c["ended_by"] == "client"
    assert c["billed_seconds"] == 2  # 3.2 s bridged, less the 2 s of silence, rounded up


async def test_asterisk_sends_the_engine_only_the_events_it_routes(flows: StartFlows) -> None:
    h = await flows()
    await h.fake.wait_until(lambda: APP in h.fake.event_filters, what="event filter")
    assert h.fake.event_filters[APP] == {*ROUTED_EVENTS, "RESTResponse"}
    # Still every step of a call: the flow needs nothing the filter leaves out.
    h.fake.phone(EXPERT, answers(press="1", hang_up_in_bridge_after=0.1))
    h.fake.phone(CLIENT, answers())
    request_id = await h.request(await h.expert())
    assert await h.settled(request_id, "completed") == "completed"
