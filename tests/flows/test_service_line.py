"""Clients calling a service number, on the fake ARI and a real PostgreSQL: the menu's bad
input, holding, the handover to the expert's acceptance flow, callbacks, and what becomes of
holding callers when the engine stops or dies."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.fakes import FakeChannel, answers, never_answers

from .conftest import CLIENT, EXPERT, OTHER_EXPERT, Flows, StartFlows

pytestmark = pytest.mark.flows

SERVICE = "0200000001"
NUMBERS: dict[str, Any] = {SERVICE: {"language": "it", "category": "tarot"}}


async def _start(flows: StartFlows, **overrides: Any) -> Flows:
    values: dict[str, Any] = {
        "service_numbers": NUMBERS,
        "hold_announce_seconds": 1,
        "ring_timeout": 1,
        **overrides,
    }
    return await flows(**values)


async def _heard(h: Flows, channel: FakeChannel, prompt: str, timeout: float = 5) -> None:
    await h.fake.wait_until(lambda: h.heard(channel, prompt), timeout=timeout, what=prompt)


async def _request_of(h: Flows, channel: FakeChannel) -> int:
    async def found() -> Any:
        return await h.pool.fetchval(
            "SELECT request_id FROM inbound_calls WHERE channel_id = $1", channel.id
        )

    await h.until_async(found, "the caller's request")
    return int(await found())


async def _inbound(h: Flows, channel: FakeChannel) -> Any:
    return await h.pool.fetchrow("SELECT * FROM inbound_calls WHERE channel_id = $1", channel.id)


def _called(h: Flows, number: str) -> list[FakeChannel]:
    """The calls the engine placed to ``number`` (not the ones it made to us)."""
    return [c for c in h.fake.dialled(number) if not c.id.startswith("in-")]


async def _tarot_expert(h: Flows, phone: str = EXPERT) -> int:
    expert_id = await h.expert(phone)
    await h.pool.execute("UPDATE experts SET category = 'tarot' WHERE id = $1", expert_id)
    return expert_id


async def test_call_in_hold_and_be_bridged_without_dialling_the_client(
    flows: StartFlows,
) -> None:
    h = await _start(flows, ring_timeout=3)
    h.fake.phone(EXPERT, answers(after=1.2, press="1"))  # the caller holds ~1 s first
    expert_id = await _tarot_expert(h)
    caller = h.call_in(SERVICE, CLIENT)
    await _heard(h, caller, "service_welcome")
    h.fake.press(caller.id, f"{expert_id}#")
    request_id = await _request_of(h, caller)
    await h.wait_state(request_id, "connected")
    consultation = await h.consultation(request_id)
    assert consultation is not None and consultation["client_channel_id"] == caller.id
    assert _called(h, CLIENT) == []  # nobody called the client: they were on the line
    assert h.heard(caller, "hold_position")
    assert h.heard(caller, "client_connecting")
    assert caller.moh_started >= 1
    h.fake.hang_up(caller.id)
    assert await h.settled(request_id, "completed") == "completed"
    client_legs = [a for a in await h.attempts(request_id) if a["leg"] == "client"]
    assert [(a["purpose"], a["outcome"]) for a in client_legs] == [("inbound", "completed")]
    await h.fake.wait_until(lambda: not caller.alive)
    await h.until_async(lambda: _outcome(h, caller), "the inbound call's outcome", expect="bridged")
    row = await _inbound(h, caller)
    assert row["expert_id"] == expert_id and row["bridged_at"] is not None
    request = await h.row(request_id)
    assert request["holding_channel"] is None and request["missed_at"] is None


async def _outcome(h: Flows, channel: FakeChannel) -> Any:
    return await h.pool.fetchval(
        "SELECT outcome FROM inbound_calls WHERE channel_id = $1", channel.id
    )


async def test_unknown_code_then_silence_ends_with_goodbye(flows: StartFlows) -> None:
    h = await _start(flows)
    caller = h.call_in(SERVICE, CLIENT)
    await _heard(h, caller, "service_welcome")
    h.fake.press(caller.id, "999#")
    await _heard(h, caller, "unknown_expert_code")
    # Then silence at the menu, asked again, then goodbye.
    await _heard(h, caller, "goodbye")
    await h.fake.wait_until(lambda: not caller.alive)
    assert caller.hung_up_by == "engine"
    assert caller.media.count("sound:ivr-engine/service_welcome") == 2  # prompt_tries
    await h.until_async(lambda: _outcome(h, caller), "outcome", expect="declined")
    assert await h.pool.fetchval("SELECT count(*) FROM requests") == 0


async def test_an_expert_not_taking_calls_is_said_so(flows: StartFlows) -> None:
    h = await _start(flows)
    expert_id = await _tarot_expert(h)
    await h.pool.execute("UPDATE experts SET taking_calls = false WHERE id = $1", expert_id)
    caller = h.call_in(SERVICE, CLIENT)
    await _heard(h, caller, "service_welcome")
    h.fake.press(caller.id, f"{expert_id}#")
    await _heard(h, caller, "expert_not_taking_calls")
    await _heard(h, caller, "goodbye")
    assert await h.pool.fetchval("SELECT count(*) FROM requests") == 0


async def test_a_withheld_number_is_told_and_counted(flows: StartFlows) -> None:
    h = await _start(flows)
    expert_id = await _tarot_expert(h)
    caller = h.call_in(SERVICE, "")
    await _heard(h, caller, "service_welcome")
    h.fake.press(caller.id, f"{expert_id}#")
    await _heard(h, caller, "withheld_number")
    await h.fake.wait_until(lambda: not caller.alive)
    await h.until_async(lambda: _outcome(h, caller), "outcome", expect="declined")
    row = await _inbound(h, caller)
    assert row["withheld"] and row["caller"] == ""
    assert await h.pool.fetchval("SELECT count(*) FROM requests") == 0


async def test_key_1_while_holding_is_a_callback_at_the_same_place(flows: StartFlows) -> None:
    h = await _start(flows, retry_delay=60)
    h.fake.phone(EXPERT, never_answers())
    expert_id = await _tarot_expert(h)
    await h.pool.execute(
        "UPDATE experts SET paused_until = now() + interval '1 hour' WHERE id = $1", expert_id
    )  # paused: the list is open, nobody is rung
    caller = h.call_in(SERVICE, CLIENT)
    await _heard(h, caller, "service_welcome")
    h.fake.press(caller.id, f"{expert_id}#")
    await _heard(h, caller, "hold_press_1")
    request_id = await _request_of(h, caller)
    before = await h.row(request_id)
    h.fake.press(caller.id, "1")
    await _heard(h, caller, "callback_confirmed")
    await h.fake.wait_until(lambda: not caller.alive)
    row = await h.row(request_id)
    assert row["state"] == "waiting" and row["holding_channel"] is None
    assert row["next_attempt_at"] == before["next_attempt_at"] and row["missed_at"] is None
    await h.until_async(lambda: _outcome(h, caller), "outcome", expect="callback")


async def test_hanging_up_while_holding_is_a_missed_call_called_back(flows: StartFlows) -> None:
    h = await _start(flows, missed_callback_minutes=15)
    expert_id = await _tarot_expert(h)
    await h.pool.execute(
        "UPDATE experts SET paused_until = now() + interval '1 hour' WHERE id = $1", expert_id
    )
    caller = h.call_in(SERVICE, CLIENT)
    await _heard(h, caller, "service_welcome")
    h.fake.press(caller.id, f"{expert_id}#")
    await _heard(h, caller, "hold_position")
    request_id = await _request_of(h, caller)
    h.fake.hang_up(caller.id)
    await h.until_async(lambda: _outcome(h, caller), "outcome", expect="abandoned")
    row = await h.row(request_id)
    assert row["holding_channel"] is None and row["state"] == "waiting"
    assert row["callback_by"] - row["missed_at"] == timedelta(minutes=15)
    # The expert is back: the client is called back at their number.
    h.fake.phone(EXPERT, answers(press="1"))
    h.fake.phone(CLIENT, answers(hang_up_in_bridge_after=0.2))
    await h.pool.execute("UPDATE experts SET paused_until = NULL WHERE id = $1", expert_id)
    h.dispatcher.poke()
    assert await h.settled(request_id, "completed") == "completed"
    assert len(_called(h, CLIENT)) == 1


async def test_the_same_caller_twice_keeps_one_place(flows: StartFlows) -> None:
    h = await _start(flows)
    expert_id = await _tarot_expert(h)
    await h.pool.execute(
        "UPDATE experts SET paused_until = now() + interval '1 hour' WHERE id = $1", expert_id
    )
    first = h.call_in(SERVICE, CLIENT)
    await _heard(h, first, "service_welcome")
    h.fake.press(first.id, f"{expert_id}#")
    await _heard(h, first, "hold_position")
    second = h.call_in(SERVICE, CLIENT)
    await _heard(h, second, "service_welcome")
    h.fake.press(second.id, f"{expert_id}#")
    await _heard(h, second, "already_in_line")
    await h.fake.wait_until(lambda: not second.alive)
    assert first.alive
    assert await h.pool.fetchval("SELECT count(*) FROM requests") == 1
    h.fake.hang_up(first.id)
    await h.until_async(lambda: _outcome(h, first), "outcome", expect="abandoned")


async def test_an_expert_who_never_answers_is_told_and_a_callback_offered(
    flows: StartFlows,
) -> None:
    h = await _start(flows, retry_delay=60, hold_announce_seconds=30)
    h.fake.phone(EXPERT, never_answers())
    expert_id = await _tarot_expert(h)
    caller = h.call_in(SERVICE, CLIENT)
    await _heard(h, caller, "service_welcome")
    h.fake.press(caller.id, f"{expert_id}#")
    request_id = await _request_of(h, caller)
    await _heard(h, caller, "hold_expert_no_answer", timeout=8)
    h.fake.press(caller.id, "1")
    await _heard(h, caller, "callback_confirmed")
    await h.fake.wait_until(lambda: not caller.alive)
    row = await h.row(request_id)
    assert row["state"] == "waiting" and row["holding_channel"] is None
    assert _called(h, CLIENT) == []


async def test_a_refusal_offers_the_next_expert_of_the_category(flows: StartFlows) -> None:
    h = await _start(flows, hold_announce_seconds=30)
    h.fake.phone(EXPERT, answers(press="3"))
    h.fake.phone(OTHER_EXPERT, answers(press="1"))
    expert_id = await _tarot_expert(h)
    other_id = await _tarot_expert(h, OTHER_EXPERT)
    caller = h.call_in(SERVICE, CLIENT)
    await _heard(h, caller, "service_welcome")
    h.fake.press(caller.id, f"{expert_id}#")
    refused = await _request_of(h, caller)
    assert await h.wait_state(refused, "refused") == "refused"
    await _heard(h, caller, "hold_expert_declined")
    assert _called(h, CLIENT) == []  # told on the line, not called
    h.fake.press(caller.id, "2")  # hold for the next available expert
    await h.until_async(
        lambda: h.pool.fetchval(
            "SELECT id FROM requests WHERE expert_id = $1 AND state = 'connected'", other_id
        ),
        "the other expert's consultation",
    )
    consultation = await h.pool.fetchrow(
        "SELECT * FROM consultations WHERE expert_id = $1", other_id
    )
    assert consultation["client_channel_id"] == caller.id
    h.fake.hang_up(caller.id)
    await h.fake.wait_until(lambda: not h.fake.channels)


async def test_the_engine_stopping_tells_the_caller_and_calls_back(flows: StartFlows) -> None:
    h = await _start(flows)
    expert_id = await _tarot_expert(h)
    await h.pool.execute(
        "UPDATE experts SET paused_until = now() + interval '1 hour' WHERE id = $1", expert_id
    )
    caller = h.call_in(SERVICE, CLIENT)
    await _heard(h, caller, "service_welcome")
    h.fake.press(caller.id, f"{expert_id}#")
    await _heard(h, caller, "hold_position")
    request_id = await _request_of(h, caller)
    await h.close()
    assert h.heard(caller, "hold_ended") and not caller.alive
    row = await h.row(request_id)
    assert row["holding_channel"] is None and row["missed_at"] is not None


async def test_a_dead_engines_holding_caller_is_adopted_and_hears_announcements_again(
    flows: StartFlows,
) -> None:
    h = await _start(flows)
    expert_id = await _tarot_expert(h)
    await h.pool.execute(
        "UPDATE experts SET paused_until = now() + interval '1 hour' WHERE id = $1", expert_id
    )
    caller = h.call_in(SERVICE, CLIENT)
    await _heard(h, caller, "service_welcome")
    h.fake.press(caller.id, f"{expert_id}#")
    await _heard(h, caller, "hold_position")
    request_id = await _request_of(h, caller)
    # kill -9: the call stays up in Asterisk, nobody says anything.
    await h.inbound.close_quietly()
    await h.die()
    assert caller.alive and not h.heard(caller, "hold_ended")
    heard_before = caller.media.count("sound:ivr-engine/hold_position")
    second = await _start(flows)
    await second.inbound.adopt_holders(second.settings.lease_seconds)
    await h.fake.wait_until(
        lambda: caller.media.count("sound:ivr-engine/hold_position") > heard_before,
        what="an announcement from the new engine",
    )
    row = await second.row(request_id)
    assert row["holding_channel"] == caller.id and row["holding_engine"] == second.engine_id
    h.fake.hang_up(caller.id)
    await second.until_async(lambda: _outcome(second, caller), "outcome", expect="abandoned")
    assert (await second.row(request_id))["missed_at"] is not None


async def test_closed_expert_offers_a_callback_at_the_opening(flows: StartFlows) -> None:
    h = await _start(flows)
    expert_id = await _tarot_expert(h)
    await h.pool.execute(
        "INSERT INTO planning_slots (expert_id, weekday, start_time, end_time)"
        " SELECT $1, d, '00:00', '00:01' FROM generate_series(0, 6) d",
        expert_id,
    )
    caller = h.call_in(SERVICE, CLIENT)
    await _heard(h, caller, "service_welcome")
    h.fake.press(caller.id, f"{expert_id}#")
    await _heard(h, caller, "expert_available_in")
    h.fake.press(caller.id, "1")
    await _heard(h, caller, "callback_confirmed")
    row = await h.pool.fetchrow("SELECT * FROM requests WHERE expert_id = $1", expert_id)
    assert row["holding_channel"] is None and row["next_attempt_at"] > row["created_at"]
    await h.until_async(lambda: _outcome(h, caller), "outcome", expect="callback")


async def test_star_hands_an_expert_to_the_phone_menu(flows: StartFlows) -> None:
    h = await _start(flows)
    caller = h.call_in(SERVICE, EXPERT)
    await _heard(h, caller, "service_welcome")
    h.fake.press(caller.id, "*")
    await _heard(h, caller, "menu_welcome")
    h.fake.hang_up(caller.id)
    await h.until_async(lambda: _outcome(h, caller), "outcome", expect="expert_menu")


async def test_a_caller_who_hung_up_while_no_engine_ran_is_called_back(
    flows: StartFlows,
) -> None:
    h = await _start(flows)
    expert_id = await _tarot_expert(h)
    await h.pool.execute(
        "UPDATE experts SET paused_until = now() + interval '1 hour' WHERE id = $1", expert_id
    )
    caller = h.call_in(SERVICE, CLIENT)
    await _heard(h, caller, "service_welcome")
    h.fake.press(caller.id, f"{expert_id}#")
    await _heard(h, caller, "hold_position")
    request_id = await _request_of(h, caller)
    await h.inbound.close_quietly()
    await h.die()
    h.fake.hang_up(caller.id)  # nobody hears it
    second = await _start(flows, missed_callback_minutes=10)
    assert await second.inbound.adopt_holders(second.settings.lease_seconds) == 1
    row = await second.row(request_id)
    assert row["holding_channel"] is None and row["state"] == "waiting"
    assert row["callback_by"] - row["missed_at"] == timedelta(minutes=10)
    assert await _outcome(second, caller) == "interrupted"


async def test_the_announcement_stops_when_the_expert_takes_the_call(flows: StartFlows) -> None:
    h = await _start(flows, ring_timeout=3)
    h.fake.playback_seconds = 3  # every prompt is long: the announcement is still on
    h.fake.phone(EXPERT, answers(after=0.2, press="1"))
    expert_id = await _tarot_expert(h)
    caller = h.call_in(SERVICE, CLIENT)
    await _heard(h, caller, "service_welcome")
    h.fake.press(caller.id, f"{expert_id}#")
    request_id = await _request_of(h, caller)
    await _heard(h, caller, "hold_position")
    # connecting_you (3 s) on the expert side; then "connecting you" to the caller at once,
    # not after the rest of the announcement.
    await h.wait_state(request_id, "connected", timeout=8)
    stopped = [r.path for r in h.fake.requests("DELETE", "/playbacks/*")]
    assert any(p.startswith(f"/playbacks/{caller.id}-") for p in stopped), stopped
    h.fake.hang_up(caller.id)
    assert await h.settled(request_id, "completed") == "completed"


@pytest.mark.parametrize("step", ["welcome", "code_typed", "closed_offer"])
async def test_a_caller_hanging_up_at_a_menu_step_leaves_nothing_behind(
    flows: StartFlows, step: str
) -> None:
    h = await _start(flows)
    h.fake.playback_seconds = 0.5
    expert_id = await _tarot_expert(h)
    if step == "closed_offer":
        await h.pool.execute(
            "INSERT INTO planning_slots (expert_id, weekday, start_time, end_time)"
            " SELECT $1, d, '00:00', '00:01' FROM generate_series(0, 6) d",
            expert_id,
        )
    caller = h.call_in(SERVICE, CLIENT)
    await _heard(h, caller, "service_welcome")
    if step != "welcome":
        h.fake.press(caller.id, str(expert_id))  # no # yet: the engine waits for more keys
        if step == "closed_offer":
            h.fake.press(caller.id, "#")
            await _heard(h, caller, "expert_available_in")
    h.fake.hang_up(caller.id)
    await h.until_async(lambda: _outcome(h, caller), "outcome", expect="hung_up")
    assert await h.pool.fetchval("SELECT count(*) FROM requests") == 0
    assert _called(h, EXPERT) == []
