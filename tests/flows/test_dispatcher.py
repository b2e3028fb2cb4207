"""The dispatcher on the fake ARI: one call at a time per expert, experts in parallel, nothing
before it is due, a leaving client's call hung up, a crashed flow retried, an engine stop
mid-call, and nothing dialled while the ARI WebSocket is down."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from tests.fakes import answers, never_answers

from .conftest import CLIENT, EXPERT, OTHER_CLIENT, OTHER_EXPERT, THIRD_CLIENT, StartFlows

pytestmark = pytest.mark.flows


async def test_one_call_at_a_time_per_expert_and_experts_in_parallel(flows: StartFlows) -> None:
    h = await flows()
    for expert in (EXPERT, OTHER_EXPERT):
        h.fake.phone(expert, answers(press="1", hang_up_in_bridge_after=0.3))
    for client in (CLIENT, OTHER_CLIENT, THIRD_CLIENT):
        h.fake.phone(client, answers())
    anna, bruno = await h.expert(EXPERT), await h.expert(OTHER_EXPERT)
    first = await h.request(anna, CLIENT)
    second = await h.request(anna, OTHER_CLIENT)
    other = await h.request(bruno, THIRD_CLIENT)

    for request_id in (first, second, other):
        assert await h.settled(request_id, "completed") == "completed"

    call_1, call_2 = h.fake.dialled(EXPERT)
    (call_b,) = h.fake.dialled(OTHER_EXPERT)
    assert call_1.destroyed_at is not None and call_b.destroyed_at is not None
    # Anna's second client waited until her first call was over...
    assert call_2.created_at >= call_1.destroyed_at
    # ...while Bruno was rung at the same time as Anna's first call.
    assert call_b.created_at < call_1.destroyed_at and call_1.created_at < call_b.destroyed_at
    # Oldest request first.
    assert (await h.attempts(first))[0]["channel_id"] == call_1.id
    assert (await h.attempts(second))[0]["channel_id"] == call_2.id


async def test_a_request_is_not_claimed_before_it_is_due(flows: StartFlows) -> None:
    h = await flows()
    h.fake.phone(EXPERT, answers(press="1", hang_up_in_bridge_after=0.05))
    h.fake.phone(CLIENT, answers())
    request_id = await h.request(await h.expert(), due_in=0.6)

    assert await h.settled(request_id, "completed") == "completed"

    due = (await h.row(request_id))["next_attempt_at"]
    claimed = await h.pool.fetchval(
        "SELECT at FROM request_events WHERE request_id = $1 AND to_state = 'ringing_expert'",
        request_id,
    )
    (call,) = h.fake.dialled(EXPERT)
    assert due <= claimed < due + timedelta(seconds=1)  # woken by its own timer, not a poke
    assert call.created_at >= due


async def test_a_leaving_client_has_the_expert_call_hung_up(flows: StartFlows) -> None:
    h = await flows(ring_timeout=5)
    h.fake.phone(EXPERT, never_answers())
    request_id = await h.request(await h.expert())
    await h.fake.wait_until(
        lambda: [c.state for c in h.fake.dialled(EXPERT)] == ["Ringing"], what="expert ringing"
    )

    await h.leave(request_id)  # as the API does: the store records it, then cancel_request

    assert request_id not in h.dispatcher.tasks
    (call,) = h.fake.dialled(EXPERT)
    assert not call.alive and call.hung_up_by == "engine"
    row = await h.row(request_id)
    assert (row["state"], row["end_reason"]) == ("lost", "client_left")
    (a,) = await h.attempts(request_id)
    assert a["outcome"] == "cancelled" and a["ended_at"] is not None
    assert (await h.events(request_id))[-1] == ("ringing_expert", "lost", "client_left")
    # The dispatcher looked again and found nothing to dial.
    h.dispatcher.idle.clear()
    h.dispatcher.poke()
    await h.until(h.dispatcher.idle.is_set, "the dispatcher idle")
    assert len(h.fake.dialled(EXPERT)) == 1


async def test_a_crashed_flow_hangs_up_and_is_retried(flows: StartFlows) -> None:
    h = await flows()
    h.fake.phone(EXPERT, answers(press="1"))
    h.fake.fail("POST", "/channels/*", status=500)  # the first prompt cannot be played
    request_id = await h.request(await h.expert())

    assert await h.settled(request_id, "waiting") == "waiting"

    assert [c.status for c in h.fake.requests("POST", "/channels/*")] == [500]
    (call,) = h.fake.dialled(EXPERT)
    assert call.hung_up_by == "engine"
    (a,) = await h.attempts(request_id)
    assert a["outcome"] == "cancelled"
    assert (await h.events(request_id))[-1] == ("ringing_expert", "waiting", "engine_error")
    row = await h.row(request_id)
    assert row["attempts"] == 1 and row["next_attempt_at"] > row["updated_at"]


async def test_an_engine_stop_mid_consultation_bills_it_until_then(flows: StartFlows) -> None:
    h = await flows()
    h.fake.phone(EXPERT, answers(press="1"))
    h.fake.phone(CLIENT, answers())
    request_id = await h.request(await h.expert())
    await h.wait_state(request_id, "connected")

    await h.close()

    row = await h.row(request_id)
    assert (row["state"], row["end_reason"]) == ("completed", "ended by engine")
    c = await h.consultation(request_id)
    assert c is not None and c["ended_by"] == "engine" and c["bridge_end"] is not None
    assert [ch.hung_up_by for ch in h.fake.dialled(EXPERT) + h.fake.dialled(CLIENT)] == [
        "engine",
        "engine",
    ]
    assert h.fake.requests("DELETE", f"/bridges/{c['bridge_id']}")
    assert await h.emails(request_id) == ["consultation_earnings"]


async def test_an_engine_stop_while_the_expert_rings_puts_the_request_back(
    flows: StartFlows,
) -> None:
    h = await flows(ring_timeout=5)
    h.fake.phone(EXPERT, never_answers())
    request_id = await h.request(await h.expert())
    await h.fake.wait_until(lambda: bool(h.fake.dialled(EXPERT)), what="the expert dialled")

    await h.close()

    assert (await h.events(request_id))[-1] == ("ringing_expert", "waiting", "engine_stopped")
    (call,) = h.fake.dialled(EXPERT)
    assert call.hung_up_by == "engine"
    (a,) = await h.attempts(request_id)
    assert a["outcome"] == "cancelled"


async def test_nothing_is_dialled_while_the_event_socket_is_down(flows: StartFlows) -> None:
    h = await flows()
    h.fake.phone(EXPERT, answers(press="1", hang_up_in_bridge_after=0.05))
    h.fake.phone(CLIENT, answers())
    expert_id = await h.expert()
    h.fake.refuse_websockets()
    await h.fake.drop_websockets()
    await h.until(lambda: not h.ari.connected.is_set(), "the engine to see the socket drop")

    request_id = await h.request(expert_id)
    # The engine retries the socket (0.2 s, 0.4 s ...): two refusals are 0.6 s without ARI.
    await h.fake.wait_until(lambda: h.fake.websocket_refusals >= 2, what="two reconnections")
    assert h.fake.requests("POST", "/channels") == []
    assert (await h.row(request_id))["state"] == "waiting"

    h.fake.refuse_websockets(False)
    assert await h.settled(request_id, "completed") == "completed"
    assert h.ari.connections == 2 and h.hooks_run == 2


async def test_a_request_written_by_another_engine_wakes_the_dispatcher(
    flows: StartFlows,
) -> None:
    """No code path of this engine pokes it: PostgreSQL's NOTIFY does (IDLE_POLL is 30 s)."""
    h = await flows()
    h.fake.phone(EXPERT, answers(press="1", hang_up_in_bridge_after=0.05))
    h.fake.phone(CLIENT, answers())
    expert_id = await h.expert()
    await h.until(lambda: h.dispatcher.idle.is_set(), "the dispatcher idle")
    client_id = await h.pool.fetchval(
        "INSERT INTO clients (alias, phone) VALUES ('Marco', $1) RETURNING id", CLIENT
    )
    request_id = await h.pool.fetchval(
        "INSERT INTO requests (expert_id, client_id) VALUES ($1, $2) RETURNING id",
        expert_id,
        client_id,
    )
    loop = asyncio.get_running_loop()
    written = loop.time()
    await h.fake.wait_until(lambda: bool(h.fake.dialled(EXPERT)), timeout=3)
    assert loop.time() - written < 3
    assert await h.settled(request_id, "completed") == "completed"
