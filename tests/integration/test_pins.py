"""PIN checks and lockouts against a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from ivr_engine.store import people
from ivr_engine.store.pins import PinOutcome, set_pin, try_pin

from .conftest import call

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)
LOCK = timedelta(minutes=15)


async def _try(pool: asyncpg.Pool, expert: int | None, caller: str, pin: str, at: datetime) -> Any:
    return await try_pin(pool, expert, caller, pin, now=at, max_failures=3, lockout=LOCK)


async def test_three_wrong_pins_lock_expert_and_caller(pool: asyncpg.Pool) -> None:
    expert = await people.create_expert(pool, alias="A", phone="+390612345678", rate=Decimal(2))
    await set_pin(pool, expert, "4321")
    assert "4321" not in (await pool.fetchval("SELECT pin_hash FROM experts"))
    assert await _try(pool, expert, "+393330001", "4321", T0) is PinOutcome.OK
    assert await _try(pool, expert, "+393330001", "1111", T0) is PinOutcome.WRONG
    assert await _try(pool, expert, "+393330001", "2222", T0) is PinOutcome.WRONG
    assert await _try(pool, expert, "+393330001", "3333", T0) is PinOutcome.LOCKED
    # Locked: even the right PIN, from the same number or another one, for this expert.
    assert await _try(pool, expert, "+393330001", "4321", T0) is PinOutcome.LOCKED
    assert await _try(pool, expert, "+393339999", "4321", T0) is PinOutcome.LOCKED
    # And the number that guessed is locked for every expert code it tries.
    assert await _try(pool, None, "+393330001", "4321", T0) is PinOutcome.LOCKED
    lockouts = await pool.fetch("SELECT expert_id, caller, locked_until FROM pin_lockouts")
    assert [(r["expert_id"], r["caller"]) for r in lockouts] == [(expert, "+393330001")]
    assert lockouts[0]["locked_until"] == T0 + LOCK
    # When the lockout is over the right PIN works again and the counters restart.
    later = T0 + LOCK + timedelta(seconds=1)
    assert await _try(pool, expert, "+393330001", "4321", later) is PinOutcome.OK
    assert await _try(pool, expert, "+393330001", "1111", later) is PinOutcome.WRONG


async def test_unknown_expert_or_no_pin_is_just_wrong(pool: asyncpg.Pool) -> None:
    expert = await people.create_expert(pool, alias="A", phone="+390612345678", rate=Decimal(2))
    assert await _try(pool, expert, "+393330001", "0000", T0) is PinOutcome.WRONG  # no PIN set
    assert await _try(pool, 999, "+393330002", "0000", T0) is PinOutcome.WRONG


async def test_pin_api(api: Any) -> None:
    engine, http, base = api
    expert = await people.create_expert(
        engine.pool, alias="A", phone="+390612345678", rate=Decimal(2)
    )
    async with http.put(f"{base}/api/v1/experts/{expert}/pin", json={"pin": "2468"}) as resp:
        assert resp.status == 204
    status, reply = await call(
        http, "PUT", f"{base}/api/v1/experts/{expert}/pin", json={"pin": "12ab"}
    )
    assert status == 422 and "pin" in reply["error"]
    status, _ = await call(http, "PUT", f"{base}/api/v1/experts/999/pin", json={"pin": "2468"})
    assert status == 404
    outcome = await try_pin(
        engine.pool, expert, "", "2468", now=datetime.now(UTC), max_failures=3, lockout=LOCK
    )
    assert outcome is PinOutcome.OK
