"""PostgreSQL restarting under the engine (``pg_ctl restart -m fast``, and a stop of several
seconds): no call is cut, every bill is right, and work resumes within seconds."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ivr_devkit.pgcluster import ThrowawayCluster
from ivr_devkit.simphones import PhoneBook, answer, no_answer
from ivr_engine.store.retry import TRANSIENT

from .conftest import Harness, observing

pytestmark = pytest.mark.e2e

EXPERT = "+390600000181"
CLIENT = "+393330000282"
OTHER_EXPERT = "+390600000183"
OTHER_CLIENT = "+393330000284"


async def fetchval(h: Harness, sql: str, *args: Any) -> Any:
    """A read that waits out the outage (the pool's connections were cut)."""
    for _ in range(100):
        try:
            return await h.pool.fetchval(sql, *args)
        except TRANSIENT:
            await asyncio.sleep(0.2)
    raise AssertionError("PostgreSQL never came back")


async def test_a_postgres_restart_cuts_no_call_and_bills_to_the_second(
    harness: Callable[..., Awaitable[Harness]],
    phones: PhoneBook,
    pg_cluster: ThrowawayCluster,
) -> None:
    await phones.phone(EXPERT, answer("1", dtmf_delay_ms=1000))
    await phones.phone(CLIENT, answer(hangup_after_ms=12000))
    ringing = await phones.phone(OTHER_EXPERT, no_answer())
    h = await harness(ring_timeout=20)
    async with observing(h.info) as observer:
        request_id = await h.request(await h.expert(EXPERT), CLIENT)
        other_expert = await h.expert(OTHER_EXPERT)
        await h.wait_state(request_id, "connected")
        # Away for 8 s: the client hangs up meanwhile, while PostgreSQL is still down.
        await asyncio.to_thread(pg_cluster.restart, down_for=8)
        back = asyncio.get_running_loop().time()
        # Work resumes at once: a client joining now is rung within seconds.
        other = await h.request(other_expert, OTHER_CLIENT)
        await ringing.wait_received("INVITE", timeout=5)
        assert asyncio.get_running_loop().time() - back < 5
        for _ in range(200):
            if await fetchval(h, "SELECT state FROM requests WHERE id = $1", request_id) == (
                "completed"
            ):
                break
            await asyncio.sleep(0.2)
    row = await h.pool.fetchrow("SELECT * FROM consultations WHERE request_id = $1", request_id)
    assert row["ended_by"] == "client"
    assert abs(row["billed_seconds"] - observer.bridged_seconds()) <= 1, (
        row["billed_seconds"],
        observer.bridged_seconds(),
    )
    attempts = await h.attempts(request_id)
    assert [a["outcome"] for a in attempts] == ["completed", "completed"]
    assert await h.wait_state(other, "ringing_expert", "waiting") in ("ringing_expert", "waiting")
    health = await h.engine.health()
    assert health["database"] is True
