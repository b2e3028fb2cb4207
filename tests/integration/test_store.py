"""The waiting list against a real PostgreSQL: transitions, the one-call-per-expert rule."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg
import pytest

from ivr_engine.domain.requests import RequestState
from ivr_engine.errors import Conflict, InvalidTransition, NotFound
from ivr_engine.store import claims, migrate, people, waiting
from ivr_engine.store.db import default_migrations_dir

pytestmark = pytest.mark.integration
S = RequestState


async def _expert(pool: asyncpg.Pool, **kw: object) -> int:
    return await people.create_expert(
        pool,
        alias="Tarot Anna",
        phone="+3906000101",
        rate=Decimal("1.50"),
        email="anna@example.org",
        **kw,  # type: ignore[arg-type]
    )


async def test_migrations_are_idempotent_and_safe_concurrently(dsn: str) -> None:
    pools = [await asyncpg.create_pool(dsn, min_size=1, max_size=2) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(p) for p in pools))
        applied = [name for names in results for name in names]
        files = sorted(
            p.name for p in default_migrations_dir().iterdir() if p.name.endswith(".sql")
        )
        assert len(files) >= 2
        assert sorted(applied) == files  # each applied by exactly one engine
        assert await migrate(pools[0]) == []
    finally:
        for p in pools:
            await p.close()


async def test_request_lifecycle_rows(pool: asyncpg.Pool) -> None:
    expert = await _expert(pool)
    client = await people.client_by_phone(pool, "+3933300001", alias="Marco")
    view = await waiting.create(pool, expert, client)
    assert view.state is S.WAITING
    job = await claims.claim_next(pool)
    assert job is not None and job.request_id == view.id and job.rate == Decimal("1.50")
    assert job.client_alias == "Marco" and job.attempt_no == 1
    assert await claims.claim_next(pool) is None  # the expert is engaged
    with pytest.raises(InvalidTransition):
        await waiting.move(pool, view.id, S.RINGING_EXPERT, S.CONNECTED)
    await waiting.move(pool, view.id, S.RINGING_EXPERT, S.REFUSED, "expert_refused")
    events = await pool.fetch(
        "SELECT from_state, to_state FROM request_events WHERE request_id = $1 ORDER BY id",
        view.id,
    )
    assert [(e["from_state"], e["to_state"]) for e in events] == [
        (None, "waiting"),
        ("waiting", "ringing_expert"),
        ("ringing_expert", "refused"),
    ]
    final = await waiting.get(pool, view.id)
    assert final.state is S.REFUSED and final.end_reason == "expert_refused"


async def test_unknown_expert_and_closed_expert(pool: asyncpg.Pool) -> None:
    client = await people.client_by_phone(pool, "+3933300001")
    with pytest.raises(NotFound):
        await waiting.create(pool, 999, client)
    closed = await _expert(pool, taking_calls=False)
    with pytest.raises(Conflict):
        await waiting.create(pool, closed, client)


async def test_missed_call_retries_then_loses(pool: asyncpg.Pool) -> None:
    expert = await _expert(pool)
    client = await people.client_by_phone(pool, "+3933300001")
    req = await waiting.create(pool, expert, client)
    assert await claims.claim_next(pool) is not None
    view = await waiting.missed(pool, req.id, retry_delay=60, max_attempts=2, reason="no_answer")
    assert view.state is S.WAITING and view.attempts == 1
    assert await claims.claim_next(pool) is None  # not before the retry delay
    await waiting.solicit(pool, req.id)  # ...unless the expert asks for it
    assert (await claims.claim_next(pool)) is not None
    view = await waiting.missed(pool, req.id, retry_delay=60, max_attempts=2, reason="busy")
    assert view.state is S.LOST and view.end_reason == "expert_unreachable"
    kinds = await pool.fetch(
        "SELECT kind, to_address FROM outbox_emails WHERE request_id = $1 ORDER BY id", req.id
    )
    assert [k["kind"] for k in kinds] == ["expert_missed_call", "expert_missed_request_lost"]
    assert kinds[0]["to_address"] == "anna@example.org"


async def test_leave_and_solicit_rules(pool: asyncpg.Pool) -> None:
    expert = await _expert(pool)
    client = await people.client_by_phone(pool, "+3933300001")
    req = await waiting.create(pool, expert, client)
    with pytest.raises(Conflict):
        await waiting.create(pool, expert, client)  # already in the list
    left = await waiting.leave(pool, req.id)
    assert left.state is S.LOST and left.end_reason == "client_left"
    with pytest.raises(Conflict):
        await waiting.solicit(pool, req.id)
    with pytest.raises(Conflict):
        await waiting.leave(pool, req.id)
    with pytest.raises(NotFound):
        await waiting.leave(pool, 12345)


async def test_concurrent_claims_never_engage_an_expert_twice(pool: asyncpg.Pool) -> None:
    expert = await _expert(pool)
    other = await people.create_expert(pool, alias="B", phone="+3906000202", rate=Decimal("2.10"))
    for i in range(6):
        client = await people.client_by_phone(pool, f"+39333000{i:02d}")
        await waiting.create(pool, expert, client)
        await waiting.create(pool, other, client)
    jobs = await asyncio.gather(*(claims.claim_next(pool) for _ in range(12)))
    claimed = [j for j in jobs if j is not None]
    assert sorted(j.expert_id for j in claimed) == sorted([expert, other])
    active = await pool.fetchval("SELECT count(*) FROM requests WHERE state = 'ringing_expert'")
    assert active == 2
    # The database itself refuses a second active request for one expert.
    with pytest.raises(asyncpg.UniqueViolationError):
        await pool.execute(
            "UPDATE requests SET state = 'ringing_expert'"
            " WHERE id = (SELECT min(id) FROM requests"
            " WHERE expert_id = $1 AND state = 'waiting')",
            expert,
        )
