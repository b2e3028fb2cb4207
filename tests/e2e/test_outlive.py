"""Calls outlive the engine: a SIGTERM, a kill -9 or a second engine on the same database
cuts no call and bills to the second. Engines run as processes of their own, killed for real;
what Asterisk shows (an observer application, the bridge over ARI) is the judge."""

from __future__ import annotations

import asyncio
import base64
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from ivr_devkit.faults.engines import EngineProcess
from ivr_devkit.sandbox import SandboxInfo
from ivr_devkit.simphones import PhoneBook, answer, no_answer

from .conftest import Harness, observing, until

pytestmark = pytest.mark.e2e

EXPERT = "+390600000171"
CLIENT = "+393330000272"
LEASE = "3"


async def ari_get(info: SandboxInfo, path: str) -> Any:
    token = base64.b64encode(f"{info.ari_user}:{info.ari_password}".encode()).decode()
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"}) as http,
        http.get(info.ari_url + path) as resp,
    ):
        if resp.status == 404:
            return None
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def api(engine: EngineProcess, method: str, path: str, body: Any = None) -> Any:
    async with (
        aiohttp.ClientSession(headers={"Authorization": "Bearer e2e-token"}) as http,
        http.request(method, engine.base + path, json=body) as resp,
    ):
        assert resp.status < 300, await resp.text()
        return await resp.json()


async def place(
    engine: EngineProcess, expert_phone: str = EXPERT, client_phone: str = CLIENT
) -> tuple[int, int]:
    """An expert and a client in their waiting list, through the engine's API."""
    expert = await api(
        engine,
        "POST",
        "/api/v1/experts",
        {"alias": "Anna", "phone": expert_phone, "rate_per_minute": "1.20", "email": "a@x.org"},
    )
    request = await api(
        engine,
        "POST",
        f"/api/v1/experts/{expert['id']}/requests",
        {"client_phone": client_phone, "client_alias": "Marco"},
    )
    return int(expert["id"]), int(request["id"])


async def wait_state(pool: Any, request_id: int, *states: str, timeout: float = 40) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        state = await pool.fetchval("SELECT state FROM requests WHERE id = $1", request_id)
        if state in states:
            return str(state)
        await asyncio.sleep(0.1)
    raise AssertionError(f"request {request_id} never reached {states}")


async def start_consultation(
    phones: PhoneBook,
    engine_process: Callable[..., Awaitable[EngineProcess]],
    pool: Any,
    client_hangs_up_after_ms: int,
) -> tuple[EngineProcess, int]:
    """An engine process, and a consultation it has bridged."""
    await phones.phone(EXPERT, answer("1", dtmf_delay_ms=1000))
    await phones.phone(CLIENT, answer(hangup_after_ms=client_hangs_up_after_ms))
    first = await engine_process(lease_seconds=LEASE)
    _, request_id = await place(first)
    await wait_state(pool, request_id, "connected")
    return first, request_id


async def billed_by_asterisk(pool: Any, request_id: int, observer: Any) -> Any:
    """The consultation's row, checked: ended by the client, billed to Asterisk's second."""
    row = await pool.fetchrow("SELECT * FROM consultations WHERE request_id = $1", request_id)
    assert row["ended_by"] == "client", dict(row)
    truth = observer.bridged_seconds(f"ivr-{request_id}-bridge")
    assert abs(row["billed_seconds"] - truth) <= 1, (row["billed_seconds"], truth)
    return row


async def test_sigterm_leaves_the_consultation_up_and_the_next_engine_bills_it(
    harness: Callable[..., Awaitable[Harness]],
    engine_process: Callable[..., Awaitable[EngineProcess]],
    phones: PhoneBook,
    sandbox: SandboxInfo,
    pool: Any,
) -> None:
    async with observing(sandbox) as observer:
        first, request_id = await start_consultation(phones, engine_process, pool, 18000)
        first.send(signal.SIGTERM)
        assert await first.wait(15) == 0
        # Nobody watches the call now, and it is still up: both phones in the bridge.
        bridge = await ari_get(sandbox, f"/bridges/ivr-{request_id}-bridge")
        assert bridge is not None and len(bridge["channels"]) == 2, bridge
        assert await pool.fetchval("SELECT state FROM requests WHERE id = $1", request_id) == (
            "connected"
        )
        second = await harness(lease_seconds=float(LEASE))
        assert await second.wait_state(request_id, "completed", timeout=40) == "completed"
    await billed_by_asterisk(pool, request_id, observer)
    owner = await pool.fetchval("SELECT owner FROM requests WHERE id = $1", request_id)
    assert owner == second.engine.lease.id if second.engine.lease else False
    attempts = await second.attempts(request_id)
    assert [a["outcome"] for a in attempts] == ["completed", "completed"]
    assert all(a["ended_at"] is not None for a in attempts)
    # The bridge is destroyed once the bill is written.
    path = f"/bridges/ivr-{request_id}-bridge"
    assert await until(lambda: ari_get(sandbox, path), lambda bridge: bridge is None) is None


async def test_kill9_while_bridged_the_next_engine_adopts_after_the_lease(
    harness: Callable[..., Awaitable[Harness]],
    engine_process: Callable[..., Awaitable[EngineProcess]],
    phones: PhoneBook,
    sandbox: SandboxInfo,
    pool: Any,
) -> None:
    async with observing(sandbox) as observer:
        first, request_id = await start_consultation(phones, engine_process, pool, 20000)
        first.send(signal.SIGKILL)
        await first.wait(10)
        second = await harness(lease_seconds=float(LEASE))
        assert await second.wait_state(request_id, "completed", timeout=45) == "completed"
    await billed_by_asterisk(pool, request_id, observer)
    events = await pool.fetch(
        "SELECT to_state FROM request_events WHERE request_id = $1 ORDER BY id", request_id
    )
    # Adopted, not restarted: the request went straight from connected to completed.
    assert [e["to_state"] for e in events][-2:] == ["connected", "completed"]


async def test_kill9_while_the_expert_rings_puts_the_request_back_at_the_head(
    harness: Callable[..., Awaitable[Harness]],
    engine_process: Callable[..., Awaitable[EngineProcess]],
    phones: PhoneBook,
    sandbox: SandboxInfo,
    pool: Any,
) -> None:
    ringing = await phones.phone(EXPERT, no_answer())
    first = await engine_process(lease_seconds=LEASE, ring_timeout="30")
    _, request_id = await place(first)
    await ringing.wait_received("INVITE", timeout=10)
    first.send(signal.SIGKILL)
    await first.wait(10)
    channels = await ari_get(sandbox, "/channels")
    assert any(c["id"].startswith(f"ivr-{request_id}-") for c in channels)  # still ringing
    second = await harness(lease_seconds=float(LEASE), ring_timeout=30)
    # Taken over once the dead engine's lease expired: the ringing stops, the attempt is not
    # counted, and the request waits at the head of the list (rung again at once).
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while loop.time() < deadline:
        if await pool.fetchval(
            "SELECT count(*) FROM request_events WHERE request_id = $1"
            " AND detail = 'engine_interrupted'",
            request_id,
        ):
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError("the dead engine's ringing call was never taken over")
    first_attempt = (await second.attempts(request_id))[0]
    assert first_attempt["outcome"] == "interrupted" and first_attempt["ended_at"] is not None
    row = await pool.fetchrow("SELECT attempts, owner FROM requests WHERE id = $1", request_id)
    assert second.engine.lease is not None
    assert row["attempts"] <= 1 and row["owner"] in (None, second.engine.lease.id)


async def test_a_second_engine_leaves_a_live_engines_calls_alone_then_takes_them_over(
    harness: Callable[..., Awaitable[Harness]],
    engine_process: Callable[..., Awaitable[EngineProcess]],
    phones: PhoneBook,
    sandbox: SandboxInfo,
    pool: Any,
) -> None:
    async with observing(sandbox) as observer:
        first, request_id = await start_consultation(phones, engine_process, pool, 26000)
        second = await harness(lease_seconds=float(LEASE), ari_app="ivr-engine-second")
        await asyncio.sleep(3 * float(LEASE))  # several leases: the first is alive, untouched
        bridge = await ari_get(sandbox, f"/bridges/ivr-{request_id}-bridge")
        assert bridge is not None and len(bridge["channels"]) == 2
        assert second.engine.dispatcher is not None and not second.engine.dispatcher.tasks
        first.send(signal.SIGKILL)
        await first.wait(10)
        assert await second.wait_state(request_id, "completed", timeout=45) == "completed"
    await billed_by_asterisk(pool, request_id, observer)


async def test_kill9_with_calls_in_every_stage(
    harness: Callable[..., Awaitable[Harness]],
    engine_process: Callable[..., Awaitable[EngineProcess]],
    phones: PhoneBook,
    sandbox: SandboxInfo,
    pool: Any,
) -> None:
    """Five bridged consultations and one request in each stage before the bridge, then
    kill -9: every bridged pair stays up and is billed right by the next engine; the others
    go back to the head of their list, their attempt not counted."""
    bridged = [(f"+3906000002{i}1", f"+3933300003{i}2") for i in range(5)]
    for expert, client in bridged:
        await phones.phone(expert, answer("1", dtmf_delay_ms=1000))
        await phones.phone(client, answer(hangup_after_ms=45000))
    ringing, offered, accepted = "+390600000261", "+390600000271", "+390600000281"
    await phones.phone(ringing, no_answer())
    await phones.phone(offered, answer())  # answers and never presses a key
    await phones.phone(accepted, answer("1", dtmf_delay_ms=1000))
    client_ringing = "+393330000382"
    await phones.phone(client_ringing, no_answer())
    first = await engine_process(lease_seconds=LEASE, ring_timeout="30", digit_timeout="20")

    async def place_for(expert: str, client: str) -> int:
        return (await place(first, expert, client))[1]

    async with observing(sandbox) as observer:
        consultations = [await place_for(e, c) for e, c in bridged]
        for request_id in consultations:
            await wait_state(pool, request_id, "connected", timeout=60)
        stages = {
            "ringing_expert": await place_for(ringing, "+393330000362"),
            "offer": await place_for(offered, "+393330000372"),
            "ringing_client": await place_for(accepted, client_ringing),
        }
        await wait_state(pool, stages["ringing_client"], "ringing_client", timeout=30)
        assert await pool.fetchval(
            "SELECT answered_at IS NOT NULL FROM call_attempts WHERE request_id = $1",
            stages["offer"],
        )
        first.send(signal.SIGKILL)
        await first.wait(10)
        bridges = await ari_get(sandbox, "/bridges")
        for request_id in consultations:
            (bridge,) = [b for b in bridges if b["id"] == f"ivr-{request_id}-bridge"]
            assert len(bridge["channels"]) == 2, bridge
        second = await harness(lease_seconds=float(LEASE), ring_timeout=30, digit_timeout=20)
        for request_id in stages.values():
            await _wait_event(pool, request_id, "engine_interrupted")
        for request_id in consultations:
            assert await second.wait_state(request_id, "completed", timeout=60) == "completed"
    for request_id in consultations:
        await billed_by_asterisk(pool, request_id, observer)
    for stage, request_id in stages.items():
        first_attempts = [
            a for a in await second.attempts(request_id) if a["outcome"] == "interrupted"
        ]
        assert first_attempts, stage
        await _wait_event(pool, request_id, "attempt 1", after="engine_interrupted")


async def _wait_event(
    pool: Any, request_id: int, detail: str, *, after: str = "", timeout: float = 30
) -> None:
    """Wait for an event with ``detail`` (later than the first one with ``after``): a call
    rung again after an interruption is "attempt 1" again, its first attempt not counted."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await pool.fetchval(
            "SELECT count(*) FROM request_events e WHERE e.request_id = $1 AND e.detail = $2"
            " AND e.id > coalesce((SELECT min(id) FROM request_events"
            "  WHERE request_id = $1 AND detail = $3), 0)",
            request_id,
            detail,
            after or "-",
        ):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"request {request_id}: no {detail!r} event")
