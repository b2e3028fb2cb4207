"""PIN checks and lockouts against a real PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg
import pytest

from ivr_engine.domain.pin import hash_secret
from ivr_engine.engine import Engine
from ivr_engine.store import accounts, people, profile
from ivr_engine.store.pins import PinOutcome, set_pin, try_pin
from tests.conftest import asterisk_away

from .conftest import call

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)
LOCK = timedelta(minutes=15)


async def _try(pool: asyncpg.Pool, expert: int | None, caller: str, pin: str, at: datetime) -> Any:
    return await try_pin(pool, expert, caller, pin, now=at, max_failures=3, lockout=LOCK)


async def test_three_wrong_pins_lock_expert_and_caller(pool: asyncpg.Pool) -> None:
    expert = await people.create_expert(pool, alias="A", phone="+390612345678", rate=Decimal(2))
    await set_pin(pool, expert, "482913")
    assert "482913" not in (await pool.fetchval("SELECT pin_hash FROM experts"))
    assert await _try(pool, expert, "+393330001", "482913", T0) is PinOutcome.OK
    assert await _try(pool, expert, "+393330001", "1111", T0) is PinOutcome.WRONG
    assert await _try(pool, expert, "+393330001", "2222", T0) is PinOutcome.WRONG
    assert await _try(pool, expert, "+393330001", "3333", T0) is PinOutcome.LOCKED
    # Locked: even the right PIN, from the same number or another one, for this expert.
    assert await _try(pool, expert, "+393330001", "482913", T0) is PinOutcome.LOCKED
    assert await _try(pool, expert, "+393339999", "482913", T0) is PinOutcome.LOCKED
    # And the number that guessed is locked for every expert code it tries.
    assert await _try(pool, None, "+393330001", "482913", T0) is PinOutcome.LOCKED
    lockouts = await pool.fetch("SELECT expert_id, caller, locked_until FROM pin_lockouts")
    assert [(r["expert_id"], r["caller"]) for r in lockouts] == [(expert, "+393330001")]
    assert lockouts[0]["locked_until"] == T0 + LOCK
    # When the lockout is over the right PIN works again and the counters restart.
    later = T0 + LOCK + timedelta(seconds=1)
    assert await _try(pool, expert, "+393330001", "482913", later) is PinOutcome.OK
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
    async with http.put(f"{base}/api/v1/experts/{expert}/pin", json={"pin": "246813"}) as r:
        assert r.status == 204
    for bad in ("12ab56", "2468"):  # a new PIN has 6 digits at least
        status, reply = await call(
            http, "PUT", f"{base}/api/v1/experts/{expert}/pin", json={"pin": bad}
        )
        assert status == 422 and "pin" in reply["error"]
    status, _ = await call(http, "PUT", f"{base}/api/v1/experts/999/pin", json={"pin": "246813"})
    assert status == 404
    outcome = await try_pin(
        engine.pool, expert, "", "246813", now=datetime.now(UTC), max_failures=3, lockout=LOCK
    )
    assert outcome is PinOutcome.OK


async def _lock(pool: asyncpg.Pool, expert: int, caller: str, at: datetime) -> None:
    for pin in ("111111", "222222", "333333"):
        await _try(pool, expert, caller, pin, at)


async def test_lockouts_grow_decay_after_a_quiet_day_and_email_the_expert(
    pool: asyncpg.Pool,
) -> None:
    expert = await people.create_expert(
        pool, alias="Anna", phone="+390612345678", rate=Decimal(2), email="anna@example.org"
    )
    await set_pin(pool, expert, "482913")
    # Every call from another number: the expert's own count is what locks.
    await _lock(pool, expert, "+393330000001", T0)
    first_end = T0 + LOCK
    await _lock(pool, expert, "+393330000002", first_end)
    second_end = first_end + 2 * LOCK  # twice as long
    ends = [r["locked_until"] for r in await pool.fetch("SELECT * FROM pin_lockouts")]
    assert ends == [first_end, second_end]
    assert await _try(
        pool, expert, "+393330000003", "482913", second_end - timedelta(seconds=1)
    ) is (PinOutcome.LOCKED)
    mails = await pool.fetch("SELECT kind, to_address, payload FROM outbox_emails ORDER BY id")
    assert [(m["kind"], m["to_address"]) for m in mails] == [
        ("expert_pin_locked", "anna@example.org")
    ] * 2
    assert json.loads(mails[1]["payload"])["locked_until"] == second_end.isoformat()
    # A quiet day after the lockout: the count starts again (a first lockout is 15 min).
    quiet = second_end + timedelta(hours=24)
    await _lock(pool, expert, "+393330000004", quiet)
    last = await pool.fetchval("SELECT max(locked_until) FROM pin_lockouts")
    assert last == quiet + LOCK


async def test_a_new_pin_unlocks_and_old_short_pins_still_work(pool: asyncpg.Pool) -> None:
    expert = await people.create_expert(pool, alias="A", phone="+390612345678", rate=Decimal(2))
    # A 4-digit PIN set before the 6-digit rule: accepted, and its length learnt.
    await pool.execute(
        "UPDATE experts SET pin_hash = $2 WHERE id = $1", expert, hash_secret("4321")
    )
    assert (await profile.load(pool, expert)).pin_digits is None
    assert await _try(pool, expert, "+393330000001", "4321", T0) is PinOutcome.OK
    assert (await profile.load(pool, expert)).pin_digits == 4
    with pytest.raises(ValueError, match="6 to 8 digits"):
        await set_pin(pool, expert, "1234")
    now = datetime.now(UTC)
    await _lock(pool, expert, "+393330000001", now)
    me = await profile.load(pool, expert)
    assert me.pin_locked_until is not None and me.pin_locked_until > now
    await set_pin(pool, expert, "907153")  # from the panel or the API: unlocked at once
    me = await profile.load(pool, expert)
    assert (me.pin_locked_until, me.pin_digits) == (None, 6)
    assert await _try(pool, expert, "+393339999999", "907153", now) is PinOutcome.OK


async def test_the_panel_asks_for_a_longer_pin_and_says_when_the_menu_is_locked(
    dsn: str,
) -> None:
    settings = asterisk_away(dsn, "t").model_copy(update={"panel_secure_cookie": False})
    engine = Engine(settings)
    await engine.start()
    pool, base = engine.pool, f"http://127.0.0.1:{engine.http_port}"
    try:
        expert = await people.create_expert(
            pool, alias="A", phone="+390612345678", rate=Decimal(2), email="a@example.org"
        )
        await accounts.create(
            pool, email="a@example.org", password="anna-password", role="expert", expert_id=expert
        )
        await pool.execute(
            "UPDATE experts SET pin_hash = $2 WHERE id = $1", expert, hash_secret("4321")
        )
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            async with http.get(base + "/login") as resp:
                assert resp.status == 200
            csrf = next(c.value for c in jar if c.key == "ivr_login_csrf")
            form = {"email": "a@example.org", "password": "anna-password", "csrf": csrf}
            async with http.post(base + "/login", data=form) as resp:
                assert resp.status == 200

            async def page() -> str:
                async with http.get(base + "/panel/profile") as resp:
                    assert resp.status == 200
                    return await resp.text()

            assert 'id="pin-weak"' not in await page()  # its length is not known yet
            now = datetime.now(UTC)
            assert await _try(pool, expert, "", "4321", now) is PinOutcome.OK
            assert "Your PIN has only 4 digits" in await page()
            await _lock(pool, expert, "", now)
            assert 'id="pin-locked"' in await page()
            await set_pin(pool, expert, "907153")
            text = await page()
            assert 'id="pin-weak"' not in text and 'id="pin-locked"' not in text
    finally:
        await engine.close()
