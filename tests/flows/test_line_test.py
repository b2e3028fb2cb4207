"""The expert's line self-test on the fake ARI: every result, what the phone heard, what
PostgreSQL recorded, and that a test and a consultation call never ring the expert at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import pytest

from ivr_engine.errors import LineTestRefused
from ivr_engine.flows.line_test import LineTests
from ivr_engine.flows.phone_menu import PhoneMenu
from ivr_engine.store import engines
from ivr_engine.store.pins import set_pin
from tests.fakes import FakeChannel, answers, busy, never_answers, refuses

from .conftest import CLIENT, EXPERT, Flows, StartFlows

pytestmark = pytest.mark.flows

Tester = Callable[..., Awaitable[tuple[Flows, LineTests]]]


@pytest.fixture
async def tester(flows: StartFlows) -> AsyncIterator[Tester]:
    made: list[LineTests] = []

    async def make(**settings: object) -> tuple[Flows, LineTests]:
        h = await flows(**settings)
        tests = LineTests(h.deps, owner=h.engine_id, lease=h.settings.lease_seconds)
        made.append(tests)
        return h, tests

    try:
        yield make
    finally:
        for tests in made:
            await tests.close()
            assert not tests.tasks


async def _result(h: Flows, test_id: int, timeout: float = 5.0) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (
        result := await h.pool.fetchval("SELECT result FROM line_tests WHERE id = $1", test_id)
    ) is None:
        assert loop.time() < deadline, f"line test {test_id} still running"
        await asyncio.sleep(0.01)
    return str(result)


async def _done(tests: LineTests, test_id: int) -> None:
    task = tests.tasks.get(test_id)
    if task is not None:
        await asyncio.wait_for(asyncio.shield(task), 5)


async def test_answer_and_key_passes(tester: Tester) -> None:
    h, tests = await tester()
    h.fake.phone(EXPERT, answers(press="5", press_delay=0.05))
    expert_id = await h.expert()
    test_id = await tests.start(expert_id, source="panel")
    assert await _result(h, test_id) == "passed"
    await _done(tests, test_id)

    (phone,) = h.fake.dialled(EXPERT)
    assert phone.id == f"ivr-lt-{test_id}"
    assert h.heard(phone, "line_test_message") and h.heard(phone, "line_test_passed")
    assert phone.hung_up_by == "engine"
    row = await h.pool.fetchrow("SELECT * FROM line_tests WHERE id = $1", test_id)
    assert (row["source"], row["key"], row["owner"]) == ("panel", "5", h.engine_id)
    assert row["answered_at"] is not None and row["ended_at"] >= row["answered_at"]
    assert row["dial_string"] == f"PJSIP/{EXPERT}@ivr-trunk"


@pytest.mark.parametrize(
    ("phone", "result"),
    [
        (never_answers(), "no_answer"),
        (busy(), "busy"),
        (refuses(), "failed"),
        (answers(), "no_key"),  # answers, never presses: prompt_tries offers, then fails
        (answers(hang_up_after=0.05), "no_key"),  # hangs up before any key
    ],
)
async def test_every_failure_is_recorded(tester: Tester, phone: object, result: str) -> None:
    h, tests = await tester()
    h.fake.phone(EXPERT, phone)  # type: ignore[arg-type]
    test_id = await tests.start(await h.expert(), source="phone_menu")
    assert await _result(h, test_id) == result
    await _done(tests, test_id)
    if result == "no_key" and h.fake.dialled(EXPERT)[0].hung_up_by == "engine":
        assert h.heard(h.fake.dialled(EXPERT)[0], "line_test_no_key")


async def test_a_second_test_while_one_runs_is_refused(tester: Tester) -> None:
    h, tests = await tester()
    h.fake.phone(EXPERT, answers(press="1", press_delay=0.3))
    expert_id = await h.expert()
    first = await tests.start(expert_id, source="panel")
    with pytest.raises(LineTestRefused) as refused:
        await tests.start(expert_id, source="phone_menu")
    assert refused.value.reason == "running"
    assert await _result(h, first) == "passed"
    await _done(tests, first)
    assert len(h.fake.dialled(EXPERT)) == 1


async def test_no_consultation_call_rings_the_expert_during_a_test(tester: Tester) -> None:
    """A client joins while the test call is up: the expert is rung for the client only
    once the test call has been hung up (Asterisk confirmed it)."""
    h, tests = await tester()
    h.fake.phone(EXPERT, answers(press="1", press_delay=0.4, hang_up_in_bridge_after=0.1))
    h.fake.phone(CLIENT, answers())
    expert_id = await h.expert()
    test_id = await tests.start(expert_id, source="panel")
    await h.fake.wait_until(lambda: bool(h.fake.dialled(EXPERT)), what="the test call")
    request_id = await h.request(expert_id)
    await asyncio.sleep(0.2)  # the dispatcher was poked: it must leave the expert alone
    assert await h.pool.fetchval("SELECT state FROM requests WHERE id = $1", request_id) == (
        "waiting"
    )
    assert len(h.fake.dialled(EXPERT)) == 1
    assert await _result(h, test_id) == "passed"
    await _done(tests, test_id)
    await h.settled(request_id, "completed")
    test_call, offer = h.fake.dialled(EXPERT)
    assert test_call.id == f"ivr-lt-{test_id}"
    assert offer.id.startswith(f"ivr-{request_id}-")
    ended = await h.pool.fetchval("SELECT ended_at FROM line_tests WHERE id = $1", test_id)
    started = await h.pool.fetchval(
        "SELECT started_at FROM call_attempts WHERE channel_id = $1", offer.id
    )
    assert ended < started


async def test_refused_while_the_expert_is_being_rung(tester: Tester) -> None:
    h, tests = await tester()
    h.fake.phone(EXPERT, answers(press="1", press_delay=0.5, hang_up_in_bridge_after=0.1))
    h.fake.phone(CLIENT, answers())
    expert_id = await h.expert()
    request_id = await h.request(expert_id)
    await h.wait_state(request_id, "ringing_expert", "ringing_client", "connected")
    with pytest.raises(LineTestRefused) as refused:
        await tests.start(expert_id, source="panel")
    assert refused.value.reason == "in_call"
    await h.settled(request_id, "completed")
    assert await h.pool.fetchval("SELECT count(*) FROM line_tests") == 0


async def test_engine_stopping_mid_test_records_interrupted(tester: Tester) -> None:
    h, tests = await tester(digit_timeout=5)
    h.fake.phone(EXPERT, answers())  # answers, listens, never presses
    test_id = await tests.start(await h.expert(), source="panel")
    await h.fake.wait_until(
        lambda: any(h.heard(c, "line_test_message") for c in h.fake.dialled(EXPERT)),
        what="the test message",
    )
    await tests.drain(0.0)
    assert await _result(h, test_id) == "interrupted"
    (phone,) = h.fake.dialled(EXPERT)
    assert h.heard(phone, "call_interrupted") and not phone.alive
    with pytest.raises(LineTestRefused) as refused:
        await tests.start(await h.expert("+390600000109"), source="panel")
    assert refused.value.reason == "stopping"


async def test_a_dead_engines_test_is_hung_up_and_interrupted(tester: Tester) -> None:
    h, tests = await tester()
    expert_id = await h.expert()
    dead = uuid.uuid4()
    await engines.register(h.pool, dead, "dead-app", "test", 0)
    await h.pool.execute(
        "UPDATE engines SET heartbeat_at = now() - interval '1 hour' WHERE id = $1", dead
    )
    test_id = await h.pool.fetchval(
        "INSERT INTO line_tests (expert_id, source, owner, channel_id)"
        " VALUES ($1, 'panel', $2, 'ivr-lt-orphan') RETURNING id",
        expert_id,
        dead,
    )
    channel = h.fake.add_channel("ivr-lt-orphan", EXPERT, app="dead-app")
    tests.kick_recovery(stale_ok=True)
    assert await _result(h, test_id) == "interrupted"
    assert not channel.alive
    # A live engine's test is never touched.
    mine = await h.pool.fetchval(
        "INSERT INTO line_tests (expert_id, source, owner, channel_id)"
        " VALUES ($1, 'panel', $2, 'ivr-lt-mine') RETURNING id",
        await h.expert("+390600000108"),
        h.engine_id,
    )
    tests.kick_recovery(stale_ok=True)
    assert tests._recovery is not None
    await tests._recovery
    assert await h.pool.fetchval("SELECT result FROM line_tests WHERE id = $1", mine) is None
    await h.pool.execute("UPDATE line_tests SET result = 'failed', ended_at = now()")


# -- the phone menu's doors ----------------------------------------------------------------

CALLER = "+393330000999"  # the expert's own phone, not the work line
PIN = "432109"


async def _menu_call(h: Flows, tests: LineTests, expert_id: int, keys: str) -> FakeChannel:
    """The expert calls the planning number from CALLER and types ``keys`` after the PIN."""
    h.fake.phone(CALLER, answers(press=f"1{expert_id}#{PIN}#{keys}", key_gap=0.05))
    channel = h.fake.add_channel("pjsip-in-1", CALLER, app=h.settings.ari_app)
    channel.args = ["inbound", h.settings.planning_number]
    leg = h.calls.adopt(channel.id, "en")
    menu = PhoneMenu(replace(h.deps, line_test=tests.start), leg, CALLER)
    try:
        await menu.run()
    finally:
        await leg.hangup()
        await leg.destroyed(timeout=2)
        h.calls.forget(leg)
    return channel


async def test_menu_key_0_tests_the_registered_number(tester: Tester) -> None:
    h, tests = await tester()
    h.fake.phone(EXPERT, answers(press="7", press_delay=0.05))
    expert_id = await h.expert()
    await set_pin(h.pool, expert_id, PIN)
    caller = await _menu_call(h, tests, expert_id, "0")
    assert h.heard(caller, "line_test_calling")
    test_id = await h.pool.fetchval("SELECT id FROM line_tests WHERE expert_id = $1", expert_id)
    assert await _result(h, test_id) == "passed"
    await _done(tests, test_id)
    (line,) = h.fake.dialled(EXPERT)
    assert caller.destroyed_at is not None
    assert line.created_at >= caller.destroyed_at  # the call in ended first


async def test_menu_key_0_refused_while_the_expert_is_in_a_call(tester: Tester) -> None:
    h, tests = await tester()
    expert_id = await h.expert()
    await set_pin(h.pool, expert_id, PIN)
    request_id = await h.request(expert_id, state="connected")
    caller = await _menu_call(h, tests, expert_id, "0#")
    assert h.heard(caller, "line_test_in_call") and h.heard(caller, "goodbye")
    assert await h.pool.fetchval("SELECT count(*) FROM line_tests") == 0
    assert h.fake.dialled(EXPERT) == []
    await h.pool.execute("UPDATE requests SET state = 'completed' WHERE id = $1", request_id)


async def test_menu_return_available_needs_a_passed_test(tester: Tester) -> None:
    h, tests = await tester(line_test_required_hours=4)
    expert_id = await h.expert()
    await set_pin(h.pool, expert_id, PIN)
    await h.pool.execute(
        "UPDATE experts SET paused_until = now() + interval '10 minutes' WHERE id = $1",
        expert_id,
    )
    caller = await _menu_call(h, tests, expert_id, "3#")
    assert h.heard(caller, "line_test_required") and not h.heard(caller, "done")
    assert (await h.expert_row(expert_id))["paused_until"] is not None
    await h.pool.execute(
        "INSERT INTO line_tests (expert_id, source, channel_id, result, ended_at)"
        " VALUES ($1, 'phone_menu', 'ivr-lt-x', 'passed', now() - interval '1 hour')",
        expert_id,
    )
    caller = await _menu_call(h, tests, expert_id, "3#")
    assert h.heard(caller, "done")
    assert (await h.expert_row(expert_id))["paused_until"] is None
