"""Line self-tests in PostgreSQL: a test and a consultation call never hold the same expert,
even racing from two connections (as two engines would); and IVR_LINE_TEST_REQUIRED_HOURS
refusing every way of going available through the HTTP API until a recent test passed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import pytest

from ivr_engine.engine import Engine
from ivr_engine.errors import LineTestRefused, LineTestRequired
from ivr_engine.store import claims, line_tests, people, waiting
from ivr_engine.store.line_tests import Result
from tests.conftest import asterisk_away

from .conftest import TOKEN, call

pytestmark = pytest.mark.integration

ROME = ZoneInfo("Europe/Rome")  # experts' default timezone


async def _expert(pool: asyncpg.Pool, phone: str = "+390612345678") -> int:
    return int(await people.create_expert(pool, alias="A", phone=phone, rate=Decimal(2)))


async def _client(pool: asyncpg.Pool, phone: str) -> int:
    return int(
        await pool.fetchval(
            "INSERT INTO clients (alias, phone) VALUES ('C', $1) RETURNING id", phone
        )
    )


async def test_a_test_is_refused_while_the_expert_is_called(pool: asyncpg.Pool) -> None:
    expert = await _expert(pool)
    view = await waiting.create(pool, expert, await _client(pool, "+393330000001"))
    job = await claims.claim_next(pool)
    assert job is not None and job.request_id == view.id
    with pytest.raises(LineTestRefused) as refused:
        await line_tests.begin(pool, expert, source="panel", owner=None)
    assert refused.value.reason == "in_call"
    await waiting.move(pool, view.id, waiting.S.RINGING_EXPERT, waiting.S.REFUSED)
    started = await line_tests.begin(pool, expert, source="panel", owner=None)
    assert started.channel_id == f"ivr-lt-{started.id}" and started.phone == "+390612345678"
    with pytest.raises(LineTestRefused) as again:
        await line_tests.begin(pool, expert, source="phone_menu", owner=None)
    assert again.value.reason == "running"


async def test_no_request_becomes_active_during_a_test(pool: asyncpg.Pool) -> None:
    tested, other = await _expert(pool), await _expert(pool, "+390612345679")
    first = await waiting.create(pool, tested, await _client(pool, "+393330000002"))
    test = await line_tests.begin(pool, tested, source="panel", owner=None)
    # Even by hand, past the claim: the trigger refuses like the one-active index.
    with pytest.raises(asyncpg.UniqueViolationError):
        await pool.execute("UPDATE requests SET state = 'ringing_expert' WHERE id = $1", first.id)
    # The claim leaves the tested expert alone and serves the others (no starvation).
    second = await waiting.create(pool, other, await _client(pool, "+393330000003"))
    job = await claims.claim_next(pool)
    assert job is not None and job.request_id == second.id
    assert await claims.claim_next(pool) is None
    assert await line_tests.finish(pool, test.id, Result.PASSED, key="1")
    assert not await line_tests.finish(pool, test.id, Result.INTERRUPTED)  # once only
    job = await claims.claim_next(pool)
    assert job is not None and job.request_id == first.id


async def test_racing_claim_and_test_never_both_win(pool: asyncpg.Pool) -> None:
    """Two connections, as two engines: one claims a request of the expert while the other
    starts a test of the same expert, many times over. Exactly one of them wins each time."""
    expert = await _expert(pool)
    client = await _client(pool, "+393330000004")
    for _ in range(25):
        view = await waiting.create(pool, expert, client)

        async def test() -> int | None:
            try:
                return (await line_tests.begin(pool, expert, source="panel", owner=None)).id
            except LineTestRefused:
                return None

        job, test_id = await asyncio.gather(claims.claim_next(pool), test())
        assert (job is None) != (test_id is None), (job, test_id)
        if test_id is not None:
            await line_tests.finish(pool, test_id, Result.NO_ANSWER)
            job = await claims.claim_next(pool)
            assert job is not None
        await waiting.move(pool, view.id, waiting.S.RINGING_EXPERT, waiting.S.REFUSED)


@pytest.fixture
async def required(dsn: str) -> AsyncIterator[tuple[Engine, aiohttp.ClientSession, str]]:
    """The API of an engine that wants a line test passed in the last 2 hours."""
    settings = asterisk_away(dsn, TOKEN).model_copy(update={"line_test_required_hours": 2.0})
    engine = Engine(settings)
    await engine.start()
    session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        yield engine, session, f"http://127.0.0.1:{engine.http_port}"
    finally:
        await session.close()
        await engine.close()


async def _passed(pool: asyncpg.Pool, expert: int, hours_ago: float) -> None:
    await pool.execute(
        "INSERT INTO line_tests (expert_id, source, channel_id, result, ended_at)"
        " VALUES ($1, 'panel', 'ivr-lt-x' || $2::float8::text, 'passed',"
        " now() - make_interval(secs => $2::float8))",
        expert,
        hours_ago * 3600,
    )


async def test_going_available_needs_a_recent_passed_test(required: Any) -> None:
    engine, http, base = required
    expert = await _expert(engine.pool)
    url = f"{base}/api/v1/experts/{expert}"
    # Going unavailable never needs a test.
    assert (await call(http, "POST", f"{url}/pause", json={}))[0] == 200
    assert (await call(http, "PUT", f"{url}/channels", json={"phone": False}))[0] == 200
    today = datetime.now(ROME).date().isoformat()
    status, _ = await call(http, "PUT", f"{url}/planning/days/{today}", json={"slots": []})
    assert status == 200

    for method, path, body in (
        ("DELETE", "/pause", None),
        ("PUT", "/channels", {"phone": True}),
    ):
        status, answer = await call(http, method, url + path, json=body)
        assert status == 409, (path, answer)
        assert "never passed" in answer["error"] and answer["reason"] == "line_test_required"

    await _passed(engine.pool, expert, hours_ago=3)  # too old
    status, answer = await call(http, "DELETE", f"{url}/pause")
    assert status == 409 and "last passed" in answer["error"]

    await _passed(engine.pool, expert, hours_ago=0.5)
    assert (await call(http, "DELETE", f"{url}/pause"))[0] == 200
    assert (await call(http, "PUT", f"{url}/channels", json={"phone": True}))[0] == 200
    row = await engine.pool.fetchrow(
        "SELECT paused_until, channel_phone FROM experts WHERE id = $1", expert
    )
    assert row["paused_until"] is None and row["channel_phone"] is True


async def test_an_override_that_opens_now_or_a_solicit_needs_the_test(required: Any) -> None:
    engine, http, base = required
    pool = engine.pool
    expert = await _expert(pool)
    url = f"{base}/api/v1/experts/{expert}"
    # Closed today by an override; removing it would open the expert now: refused.
    today = datetime.now(ROME).date().isoformat()
    assert (await call(http, "PUT", f"{url}/planning/days/{today}", json={"slots": []}))[0] == 200
    status, answer = await call(http, "DELETE", f"{url}/planning/days/{today}")
    assert status == 409 and "line test" in answer["error"]
    status, av = await call(http, "GET", f"{url}/availability")
    assert av["open"] is False

    # A solicit ends a pause: refused too, and the client still waits, untouched.
    await pool.execute("DELETE FROM planning_overrides WHERE expert_id = $1", expert)
    await pool.execute(
        "UPDATE experts SET paused_until = now() + interval '10 minutes' WHERE id = $1", expert
    )
    status, req = await call(
        http, "POST", f"{url}/requests", json={"client_phone": "+393330000009"}
    )
    assert status == 201, req
    status, answer = await call(http, "POST", f"{base}/api/v1/requests/{req['id']}/solicit")
    assert status == 409 and "line test" in answer["error"]
    assert await pool.fetchval("SELECT paused_until FROM experts WHERE id = $1", expert)
    with pytest.raises(LineTestRequired):
        await line_tests.require_recent_pass(pool, expert, 2.0, datetime.now(UTC))
    await _passed(pool, expert, hours_ago=1)
    status, _ = await call(http, "POST", f"{base}/api/v1/requests/{req['id']}/solicit")
    assert status == 202
    assert await pool.fetchval("SELECT paused_until FROM experts WHERE id = $1", expert) is None
