"""The experts' phone menu end to end: SIPp dials the planning number and types real DTMF;
the changes are asserted in PostgreSQL and through the HTTP API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ivr_devkit.simphones import Keys, PhoneBook
from ivr_engine.store.pins import set_pin

from .conftest import Harness

pytestmark = pytest.mark.e2e

PLANNING = "0694801744"
EXPERT = "+390600000141"
PIN = "432109"

StartHarness = Callable[..., Awaitable[Harness]]


async def _expert(h: Harness) -> int:
    expert_id = await h.expert(EXPERT)
    await set_pin(h.pool, expert_id, PIN)
    return expert_id


def _login(*after: Keys) -> tuple[Keys, ...]:
    return (Keys("1", after_ms=1500), Keys(PIN + "#", after_ms=1500, gap_ms=250), *after)


async def test_good_pin_then_pause(harness: StartHarness, phones: PhoneBook) -> None:
    h = await harness(planning_number=PLANNING)
    expert_id = await _expert(h)
    keys = _login(Keys("2", after_ms=1500), Keys("#", after_ms=2500))
    caller = await phones.call(PLANNING, from_number=EXPERT.lstrip("+"), keys=keys)
    result = await caller.finished(60)
    assert "BYE" in result.received, result  # the engine said goodbye and hung up
    status, av = await h.api("GET", f"/api/v1/experts/{expert_id}/availability")
    assert status == 200 and av["reason"] == "paused"
    until = datetime.fromisoformat(av["paused_until"])
    assert timedelta(minutes=18) < until - datetime.now(UTC) <= timedelta(minutes=20)


async def test_three_wrong_pins_lock_even_the_right_one(
    harness: StartHarness, phones: PhoneBook
) -> None:
    h = await harness(planning_number=PLANNING)
    expert_id = await _expert(h)
    wrong = (
        Keys("1", after_ms=1500),
        Keys("1111#", after_ms=1500, gap_ms=250),
        Keys("2222#", after_ms=2500, gap_ms=250),
        Keys("3333#", after_ms=2500, gap_ms=250),
    )
    caller = await phones.call(PLANNING, from_number=EXPERT.lstrip("+"), keys=wrong)
    assert "BYE" in (await caller.finished(60)).received
    lockouts = await h.pool.fetch("SELECT expert_id, caller FROM pin_lockouts")
    assert [r["expert_id"] for r in lockouts] == [expert_id]

    # The right PIN now: still refused (same words), so the pause key does nothing.
    again = await phones.call(
        PLANNING,
        from_number=EXPERT.lstrip("+"),
        keys=_login(Keys("2", after_ms=1500)),
        hangup_after_ms=4000,
    )
    await again.finished(60)
    paused = await h.pool.fetchval("SELECT paused_until FROM experts WHERE id = $1", expert_id)
    assert paused is None


async def test_unknown_caller_uses_expert_code(harness: StartHarness, phones: PhoneBook) -> None:
    h = await harness(planning_number=PLANNING)
    expert_id = await _expert(h)
    keys = (
        Keys("1", after_ms=1500),
        Keys(f"{expert_id}#", after_ms=1500, gap_ms=250),
        Keys(PIN + "#", after_ms=1500, gap_ms=250),
        Keys("4", after_ms=1500),  # phone line off
        Keys("#", after_ms=2500),
    )
    caller = await phones.call(PLANNING, from_number="393330000555", keys=keys)
    assert "BYE" in (await caller.finished(60)).received
    phone_on = await h.pool.fetchval("SELECT channel_phone FROM experts WHERE id = $1", expert_id)
    assert phone_on is False


async def test_set_end_time_of_today(harness: StartHarness, phones: PhoneBook) -> None:
    rome = ZoneInfo("Europe/Rome")
    local = datetime.now(rome)
    end = (local + timedelta(minutes=45)).replace(second=0, microsecond=0)
    if end.date() != local.date():
        pytest.skip("too close to midnight in Rome to set an end time today")
    h = await harness(planning_number=PLANNING)
    expert_id = await _expert(h)
    keys = _login(
        Keys("7", after_ms=1500),
        Keys(f"{end:%H%M}#", after_ms=1500, gap_ms=250),
        Keys("#", after_ms=3000),
    )
    caller = await phones.call(PLANNING, from_number=EXPERT.lstrip("+"), keys=keys)
    assert "BYE" in (await caller.finished(60)).received
    status, planning = await h.api("GET", f"/api/v1/experts/{expert_id}/planning")
    assert status == 200
    today = planning["days"][local.date().isoformat()]
    assert today[-1].endswith(f"-{end:%H:%M}"), planning
    status, av = await h.api("GET", f"/api/v1/experts/{expert_id}/availability")
    assert av["open"] is True
    assert datetime.fromisoformat(av["closes_at"]) == end


async def test_refuse_all_waiting_after_confirm(harness: StartHarness, phones: PhoneBook) -> None:
    h = await harness(planning_number=PLANNING)
    expert_id = await _expert(h)
    # Waiting clients while the expert is paused (so none is rung meanwhile).
    await h.api("POST", f"/api/v1/experts/{expert_id}/pause", {"minutes": 30})
    waiting = [await h.request(expert_id, f"+39333000{n}77") for n in range(2)]
    keys = _login(Keys("8", after_ms=1500), Keys("1", after_ms=2500), Keys("#", after_ms=3000))
    caller = await phones.call(PLANNING, from_number=EXPERT.lstrip("+"), keys=keys)
    assert "BYE" in (await caller.finished(60)).received
    states = await h.pool.fetch(
        "SELECT state, end_reason FROM requests WHERE id = ANY($1::bigint[])", waiting
    )
    assert [(r["state"], r["end_reason"]) for r in states] == [
        ("refused", "refused_at_closing")
    ] * 2
    told = await h.pool.fetchval(
        "SELECT count(*) FROM outbox_emails WHERE kind = 'client_request_refused'"
    )
    assert told == 2


async def test_status_then_change_pin(harness: StartHarness, phones: PhoneBook) -> None:
    from datetime import UTC as _UTC

    from ivr_engine.store.pins import PinOutcome, try_pin

    h = await harness(planning_number=PLANNING)
    expert_id = await _expert(h)
    keys = _login(
        Keys("1", after_ms=1500),  # status and today's slots, interrupted by the next key
        Keys("9", after_ms=2500),
        Keys("864213#", after_ms=1500, gap_ms=250),
        Keys("864213#", after_ms=1500, gap_ms=250),
        # well inside the 28 s main menu that follows "done", however slow the machine
        Keys("#", after_ms=6000),
    )
    caller = await phones.call(PLANNING, from_number=EXPERT.lstrip("+"), keys=keys)
    # Ends with "#", or (if a loaded machine made the key land outside the prompt) after the
    # menu's own timeouts: either way with a BYE; the PIN checks below are the point.
    assert "BYE" in (await caller.finished(120)).received
    now = datetime.now(_UTC)
    lock = timedelta(minutes=15)
    assert await try_pin(
        h.pool, expert_id, "", "864213", now=now, max_failures=3, lockout=lock
    ) is (PinOutcome.OK)
    assert await try_pin(h.pool, expert_id, "", PIN, now=now, max_failures=3, lockout=lock) is (
        PinOutcome.WRONG
    )
