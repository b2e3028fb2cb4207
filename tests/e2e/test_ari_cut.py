"""The ARI WebSocket cut between the engine and Asterisk (a TCP proxy the test controls):
after reconnecting, the engine asks Asterisk what it missed; no flow waits forever, no state
is wrong, and no expert is blamed for the engine's gap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import pytest

from ivr_devkit.sandbox import SandboxInfo
from ivr_devkit.simphones import PhoneBook, answer

from .conftest import Harness, observing
from .tcpproxy import TcpProxy

pytestmark = pytest.mark.e2e

EXPERT = "+390600000191"
CLIENT = "+393330000292"


@pytest.fixture
async def proxy(sandbox: SandboxInfo) -> AsyncIterator[TcpProxy]:
    ari = urlsplit(sandbox.ari_url)
    proxy = TcpProxy(ari.hostname or "127.0.0.1", ari.port or 80)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


def through(proxy: TcpProxy, sandbox: SandboxInfo) -> str:
    return f"http://127.0.0.1:{proxy.port}{urlsplit(sandbox.ari_url).path}"


async def test_a_cut_during_the_bridge_bills_to_the_end_asterisk_recorded(
    harness: Callable[..., Awaitable[Harness]],
    phones: PhoneBook,
    proxy: TcpProxy,
    sandbox: SandboxInfo,
) -> None:
    await phones.phone(EXPERT, answer("1", dtmf_delay_ms=1000))
    await phones.phone(CLIENT, answer(hangup_after_ms=10000))
    h = await harness(ari_url=through(proxy, sandbox), lease_seconds=3.0)
    async with observing(sandbox) as observer:
        request_id = await h.request(await h.expert(EXPERT), CLIENT)
        await h.wait_state(request_id, "connected")
        connections = h.engine.ari.connections
        await proxy.cut(refuse_for=9)  # the client hangs up while nobody hears it
        assert await h.wait_state(request_id, "completed", timeout=40) == "completed"
    assert h.engine.ari.connections > connections
    row = await h.pool.fetchrow("SELECT * FROM consultations WHERE request_id = $1", request_id)
    assert abs(row["billed_seconds"] - observer.bridged_seconds()) <= 1, (
        row["billed_seconds"],
        observer.bridged_seconds(),
    )


async def test_a_cut_during_the_offer_does_not_blame_the_expert(
    harness: Callable[..., Awaitable[Harness]],
    phones: PhoneBook,
    proxy: TcpProxy,
    sandbox: SandboxInfo,
) -> None:
    # Two calls: on the first the key falls in the gap, on the second it is heard.
    expert_phone = await phones.phone(EXPERT, answer("1", dtmf_delay_ms=2500), calls=2)
    await phones.phone(CLIENT, answer(hangup_after_ms=8000))
    h = await harness(ari_url=through(proxy, sandbox), digit_timeout=3)
    request_id = await h.request(await h.expert(EXPERT), CLIENT)
    await expert_phone.wait_received("INVITE", timeout=10)
    await asyncio.sleep(1.5)  # answered, the offer is playing: the key falls in the gap
    await proxy.cut(refuse_for=3)
    assert await h.wait_state(request_id, "completed", timeout=60) == "completed"
    first = (await h.attempts(request_id))[0]
    assert first["outcome"] == "interrupted", first
    events = [
        r["detail"]
        for r in await h.pool.fetch(
            "SELECT detail FROM request_events WHERE request_id = $1 ORDER BY id", request_id
        )
    ]
    assert "engine_interrupted" in events and "no_choice" not in events
    missed = await h.pool.fetchval(
        "SELECT count(*) FROM outbox_emails WHERE kind LIKE 'expert_missed%'"
    )
    assert missed == 0
    assert await h.pool.fetchval("SELECT attempts FROM requests WHERE id = $1", request_id) == 1
