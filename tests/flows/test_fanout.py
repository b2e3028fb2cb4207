"""The fan-out flow on the fake ARI and a real PostgreSQL: a category request rung to several
experts at once, the first to press 1 wins, the others hear "already taken" and are hung up
(not billed, not counted as missed); everybody refuses; the client leaves during the offer."""

from __future__ import annotations

import asyncio

import pytest

from ivr_engine.store import offers
from tests.fakes import answers, never_answers

from .conftest import CLIENT, Flows, StartFlows

pytestmark = pytest.mark.flows

EXPERTS = ("+390600000111", "+390600000112", "+390600000113")


async def _category_request(h: Flows, n_experts: int = 3) -> tuple[int, list[int]]:
    experts = [await h.expert(phone) for phone in EXPERTS[:n_experts]]
    await h.pool.execute("UPDATE experts SET category = 'cartomancy'")
    client = await h.pool.fetchval(
        "INSERT INTO clients (alias, phone, email) VALUES ('Marco', $1, 'marco@example.org')"
        " RETURNING id",
        CLIENT,
    )
    view = await offers.create(h.pool, "cartomancy", client, None)
    h.dispatcher.poke()
    return view.id, experts


async def _offers(h: Flows, request_id: int) -> dict[int, str]:
    return {r["expert_id"]: r["state"] for r in await offers.of_request(h.pool, request_id)}


async def test_two_press_1_a_few_ms_apart_one_wins_the_others_hear_already_taken(
    flows: StartFlows,
) -> None:
    h = await flows(connect=False)
    # Keys 5 ms apart, once every phone has answered and heard the offer begin.
    h.fake.phone(EXPERTS[0], answers(press="1", press_delay=0.2, hang_up_in_bridge_after=0.2))
    h.fake.phone(EXPERTS[1], answers(press="1", press_delay=0.205, hang_up_in_bridge_after=0.2))
    h.fake.phone(EXPERTS[2], answers())  # listens, presses nothing
    h.fake.phone(CLIENT, answers())
    request_id, experts = await _category_request(h)
    await h.connect()

    assert await h.settled(request_id, "completed") == "completed"

    row = await h.row(request_id)
    winner = row["expert_id"]
    assert winner in experts[:2]
    states = await _offers(h, request_id)
    assert states[winner] == "won"
    assert sorted(s for e, s in states.items() if e != winner) == ["taken", "taken"]
    legs = {e: h.fake.dialled(p)[0] for e, p in zip(experts, EXPERTS, strict=True)}
    for expert, leg in legs.items():
        assert h.heard(leg, "offer_request_from")
        assert h.heard(leg, "already_taken") == (expert != winner), expert
        assert not leg.alive
    # One consultation, the winner's; the losers are neither billed nor counted as missed.
    c = await h.consultation(request_id)
    assert c is not None and c["expert_id"] == winner
    assert await h.pool.fetchval("SELECT count(*) FROM consultations") == 1
    assert (
        await h.pool.fetchval("SELECT count(*) FROM experts WHERE unreachable_until IS NOT NULL")
        == 0
    )
    assert await h.emails(request_id) == ["consultation_earnings"]
    outcomes = sorted(a["outcome"] for a in await h.attempts(request_id) if a["leg"] == "expert")
    assert outcomes == ["completed", "taken_by_other", "taken_by_other"]


async def test_everybody_refuses_the_request_is_refused_and_the_client_emailed(
    flows: StartFlows,
) -> None:
    h = await flows(connect=False)
    h.fake.phone(EXPERTS[0], answers(press="3"))
    h.fake.phone(EXPERTS[1], answers(press="3", press_delay=0.05))
    request_id, experts = await _category_request(h, 2)
    await h.connect()

    assert await h.settled(request_id, "refused") == "refused"

    row = await h.row(request_id)
    assert (row["end_reason"], row["expert_id"]) == ("all_refused", None)
    assert await _offers(h, request_id) == {experts[0]: "refused", experts[1]: "refused"}
    for phone in EXPERTS[:2]:
        (leg,) = h.fake.dialled(phone)
        assert h.heard(leg, "refused_goodbye")
    assert h.fake.dialled(CLIENT) == []
    assert await h.emails(request_id) == ["client_request_closed"]


async def test_no_answer_and_a_hang_up_during_the_offer_wait_for_the_next_round(
    flows: StartFlows,
) -> None:
    h = await flows(connect=False)
    h.fake.phone(EXPERTS[0], never_answers())
    h.fake.phone(EXPERTS[1], answers(hang_up_after=0.05))
    request_id, experts = await _category_request(h, 2)
    await h.connect()

    assert await h.settled(request_id, "waiting") == "waiting"

    assert await _offers(h, request_id) == {experts[0]: "no_answer", experts[1]: "no_answer"}
    # Missed calls: neither is rung again before IVR_RETRY_DELAY; no email to anyone.
    assert (
        await h.pool.fetchval("SELECT count(*) FROM experts WHERE unreachable_until > now()") == 2
    )
    assert await h.emails(request_id) == []
    assert (await h.row(request_id))["expert_id"] is None


async def test_the_client_leaving_releases_every_ringing_expert_at_once(
    flows: StartFlows,
) -> None:
    h = await flows(connect=False, digit_timeout=5)
    h.fake.phone(EXPERTS[0], answers())  # listening to the offer
    h.fake.phone(EXPERTS[1], never_answers())  # still ringing
    request_id, experts = await _category_request(h, 2)
    await h.connect()
    await h.fake.wait_until(
        lambda: (
            len(h.fake.dialled(EXPERTS[0])) == 1
            and h.fake.dialled(EXPERTS[0])[0].answered_at is not None
            and len(h.fake.dialled(EXPERTS[1])) == 1
        ),
        what="both experts rung, one answered",
    )

    await h.leave(request_id)

    assert await h.settled(request_id, "lost") == "lost"
    for phone in EXPERTS[:2]:
        (leg,) = h.fake.dialled(phone)
        assert not leg.alive and leg.hung_up_by == "engine"
    assert await _offers(h, request_id) == {experts[0]: "released", experts[1]: "released"}
    assert h.fake.dialled(CLIENT) == []
    assert (
        await h.pool.fetchval("SELECT count(*) FROM experts WHERE unreachable_until IS NOT NULL")
        == 0
    )


async def test_the_winner_hands_it_back_while_the_client_rings_then_it_goes_to_the_others(
    flows: StartFlows,
) -> None:
    h = await flows(connect=False, ring_timeout=5)
    h.fake.phone(EXPERTS[0], answers(press="1"))
    h.fake.phone(EXPERTS[1], answers())  # listens; loses the race
    h.fake.phone(CLIENT, never_answers())
    request_id, experts = await _category_request(h, 2)
    await h.connect()
    await h.wait_state(request_id, "ringing_client")
    await h.fake.wait_until(
        lambda: len(h.fake.dialled(CLIENT)) == 1 and not h.fake.dialled(EXPERTS[1])[0].alive,
        what="the client rung, the other expert told and hung up",
    )
    for _ in range(500):  # the offer is ended just after the hang-up
        if (await _offers(h, request_id))[experts[1]] == "taken":
            break
        await asyncio.sleep(0.01)
    h.fake.phone(EXPERTS[1], answers(press="3"))  # offered again, refuses

    # As the panel's button does (RequestActions.hand_back): the call, then the store.
    await h.dispatcher.cancel_request(request_id, put_back=False)
    assert (await h.row(request_id))["state"] == "ringing_client"  # left for the hand-back
    view = await offers.hand_back(h.pool, request_id, experts[0], "not my field")
    assert (view.state.value, view.expert_id) == ("waiting", None)

    # Back in distribution, never to the expert who handed it back: the other refuses.
    assert await h.settled(request_id, "refused") == "refused"
    (client,) = h.fake.dialled(CLIENT)
    assert not client.alive and client.hung_up_by == "engine"
    assert len(h.fake.dialled(EXPERTS[0])) == 1 and len(h.fake.dialled(EXPERTS[1])) == 2
    rows = await offers.of_request(h.pool, request_id)
    assert [(r["expert_id"], r["state"], r["reason"]) for r in rows] == [
        (experts[0], "handed_back", "not my field"),
        (experts[1], "taken", ""),
        (experts[1], "refused", ""),
    ]
    assert (await h.row(request_id))["end_reason"] == "all_refused"
    assert await h.consultation(request_id) is None


async def test_a_socket_drop_during_the_offer_blames_no_expert_and_offers_it_again(
    flows: StartFlows,
) -> None:
    h = await flows(connect=False, digit_timeout=0.2, prompt_tries=2)
    for phone in EXPERTS[:2]:
        h.fake.phone(phone, answers())  # presses nothing by itself
    h.fake.playback_seconds = 0.2  # time to drop the socket while the offer plays
    request_id, experts = await _category_request(h, 2)
    await h.connect()
    await h.fake.wait_until(
        lambda: (
            all(c.played for p in EXPERTS[:2] for c in h.fake.dialled(p))
            and len(h.fake.dialled(EXPERTS[0])) == len(h.fake.dialled(EXPERTS[1])) == 1
        ),
        what="the offer playing to both",
    )
    for phone in EXPERTS[:2]:
        h.fake.phone(phone, answers(press="3"))  # the next round: both refuse

    h.fake.refuse_websockets()
    await h.fake.drop_websockets()
    await h.until(lambda: not h.ari.connected.is_set(), "the engine to see the socket drop")
    h.fake.refuse_websockets(False)

    assert await h.settled(request_id, "refused", timeout=10) == "refused"
    for phone in EXPERTS[:2]:
        first, second = h.fake.dialled(phone)
        assert first.media[-1].endswith("/call_interrupted") and first.hung_up_by == "engine"
        assert h.heard(second, "refused_goodbye")
    rows = await offers.of_request(h.pool, request_id)
    assert sorted((r["state"], r["reason"]) for r in rows) == [
        ("refused", ""),
        ("refused", ""),
        ("released", "engine_gap"),
        ("released", "engine_gap"),
    ]
    assert (
        await h.pool.fetchval("SELECT count(*) FROM experts WHERE unreachable_until IS NOT NULL")
        == 0
    )
    assert experts
