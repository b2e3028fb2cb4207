"""Asterisk going away in the middle of a call: the engine reconnects, reconciles what it
owned, and the request is neither lost nor rung twice at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from ivr_devkit.sandbox import Sandbox
from ivr_devkit.simphones import PhoneBook, answer, no_answer

from .conftest import Harness, until

pytestmark = pytest.mark.e2e

EXPERT = "+390600000111"
CLIENT = "+393330000222"


async def test_asterisk_restart_while_expert_rings(
    harness: Callable[..., Awaitable[Harness]], phones: PhoneBook
) -> None:
    ringing = await phones.phone(EXPERT, no_answer())
    await phones.phone(CLIENT, answer(hangup_after_ms=6500))
    h = await harness(ring_timeout=20, retry_delay=2)
    request_id = await h.request(await h.expert(EXPERT), CLIENT)
    await ringing.wait_received("INVITE", timeout=10)
    connections = h.engine.ari.connections

    box = Sandbox()
    await asyncio.to_thread(box.down)  # Asterisk dies with the call ringing
    await phones.replace(EXPERT, answer("1", dtmf_delay_ms=1000))
    await asyncio.to_thread(lambda: box.up(cel=h.info.cel))

    assert await h.wait_state(request_id, "completed", timeout=90) == "completed"
    assert h.engine.ari.connections > connections  # the WebSocket was reopened
    first, second, client = await h.attempts(request_id)
    assert first["outcome"] == "no_answer" and first["answered_at"] is None
    assert (second["choice"], second["outcome"]) == ("1", "completed")
    assert client["outcome"] == "completed"
    health = await h.engine.health()
    assert health["ari"] is True and health["database"] is True


async def test_inbound_call_without_engine_hears_fallback(
    sandbox: object, phones: PhoneBook
) -> None:
    """Stasis() fails when no engine is connected: the dialplan answers and apologises."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    caller = await phones.call("0694801744", from_number="393330000999")
    result = await caller.finished(30)
    elapsed = loop.time() - started
    assert "200" in result.received and "BYE" in result.received, result
    assert elapsed > 3  # the service_unavailable prompt (about 5 s) was played, not silence


async def test_inbound_call_with_engine_is_told_and_hung_up(
    harness: Callable[..., Awaitable[Harness]], phones: PhoneBook
) -> None:
    h = await harness()
    caller = await phones.call("0694801744", from_number="393330000999")
    result = await caller.finished(30)
    assert "200" in result.received and "BYE" in result.received, result
    # The phone has its BYE; Asterisk may not have destroyed the channel yet.
    assert await until(lambda: h.ari("/channels"), lambda channels: channels == []) == []
