"""The expert's line self-test end to end: SIPp is the expert's own phone calling the
planning number (code, PIN, key 0 with real RFC 2833 DTMF) and the registered line that
rings, answers and presses a key, or never answers, or never presses one. Asserted on the
playbacks Asterisk reports over ARI and on what PostgreSQL recorded."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ivr_devkit.simphones import Keys, PhoneBook, answer, no_answer
from ivr_engine.store.pins import set_pin

from .conftest import AriObserver, Harness

pytestmark = pytest.mark.e2e

PLANNING = "0694801744"
PIN = "432109"
PERSONAL = "393330000777"  # the expert calls from their own phone, not the work line

StartHarness = Callable[..., Awaitable[Harness]]


def _played(observer: AriObserver, channel_id: str) -> list[str]:
    """The prompts Asterisk started playing to a channel, in order."""
    return [
        e["playback"]["media_uri"].rsplit("/", 1)[-1]
        for e in observer.events
        if e["type"] == "PlaybackStarted" and e["playback"]["target_uri"] == f"channel:{channel_id}"
    ]


async def _result(h: Harness, expert_id: int, timeout: float = 75) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        row = await h.pool.fetchrow(
            "SELECT * FROM line_tests WHERE expert_id = $1 ORDER BY id DESC LIMIT 1", expert_id
        )
        if row is not None and row["result"] is not None:
            return row
        assert loop.time() < deadline, f"no line test result for expert {expert_id}: {row}"
        await asyncio.sleep(0.1)


def _menu_keys(expert_id: int) -> tuple[Keys, ...]:
    return (
        Keys("1", after_ms=1500),
        Keys(f"{expert_id}#", after_ms=1500, gap_ms=250),
        Keys(PIN + "#", after_ms=1500, gap_ms=250),
        Keys("0", after_ms=1500),  # test my line
    )


async def test_called_in_then_the_line_answers_and_passes(
    harness: StartHarness, phones: PhoneBook, sandbox: Any
) -> None:
    work = "+390600000151"
    line = await phones.phone(work, answer("5", dtmf_delay_ms=2500))
    h = await harness(planning_number=PLANNING)
    expert_id = await h.expert(work)
    await set_pin(h.pool, expert_id, PIN)
    async with AriObserver(sandbox, "PlaybackStarted") as observer:
        caller = await phones.call(PLANNING, from_number=PERSONAL, keys=_menu_keys(expert_id))
        assert "BYE" in (await caller.finished(60)).received  # the menu said so and hung up
        row = await _result(h, expert_id)
        assert (await line.finished(20)).ok
    assert (row["result"], row["key"], row["source"]) == ("passed", "5", "phone_menu")
    assert row["answered_at"] is not None and row["hangup_cause"] is None
    # The call in heard that its own end lets the work line ring.
    heard_calling = [
        e["playback"]["target_uri"]
        for e in observer.events
        if e["playback"]["media_uri"].endswith("/line_test_calling")
    ]
    assert len(heard_calling) == 1 and heard_calling[0] != f"channel:{row['channel_id']}"
    assert _played(observer, row["channel_id"]) == ["line_test_message", "line_test_passed"]
    # The expert's work line was rung only once the call in had ended.
    assert row["requested_at"] < row["answered_at"]
    channels = await h.ari("/channels")
    assert not [c for c in channels if c["id"] == row["channel_id"]]


async def test_no_answer_and_no_key_fail(
    harness: StartHarness, phones: PhoneBook, sandbox: Any
) -> None:
    silent, deaf = "+390600000152", "+390600000153"
    await phones.phone(silent, no_answer())
    deaf_line = await phones.phone(deaf, answer())  # answers, never presses a key
    h = await harness(planning_number=PLANNING, prompt_tries=1)
    silent_id, deaf_id = await h.expert(silent), await h.expert(deaf)
    await set_pin(h.pool, silent_id, PIN)
    assert h.engine.line_tests is not None
    async with AriObserver(sandbox, "PlaybackStarted") as observer:
        caller = await phones.call(PLANNING, from_number=PERSONAL, keys=_menu_keys(silent_id))
        # The panel's button calls the same entry as the menu's key 0.
        await h.engine.line_tests.start(deaf_id, source="panel")
        silent_row, deaf_row = await asyncio.gather(_result(h, silent_id), _result(h, deaf_id))
        await caller.finished(60)
        assert "BYE" in (await deaf_line.finished(20)).received  # the engine hung up
    assert (silent_row["result"], silent_row["answered_at"]) == ("no_answer", None)
    assert _played(observer, silent_row["channel_id"]) == []
    assert (deaf_row["result"], deaf_row["key"]) == ("no_key", None)
    assert _played(observer, deaf_row["channel_id"]) == ["line_test_message", "line_test_no_key"]
    # A failed test is shown as such and never counts as passed.
    passed = await h.pool.fetchval("SELECT count(*) FROM line_tests WHERE result = 'passed'")
    assert passed == 0
