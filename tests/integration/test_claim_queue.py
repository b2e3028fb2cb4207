"""The claim's queue on a real PostgreSQL: the columns the triggers keep on each expert
(``engaged``, ``waiting_since``: migrations 0012 and 0017) against what the requests say
after every kind of move, the order in which one long list is claimed (the index
requests_waiting_order of migration 0017 against WAITING_ORDER written out in Python), and
the dispatcher's one due-time statement against the three queries it stands for."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from ivr_engine.domain.requests import RequestState
from ivr_engine.store import claims, expiry, offers, people, waiting, wake

pytestmark = pytest.mark.integration
S = RequestState


async def _experts(pool: asyncpg.Pool, n: int) -> list[int]:
    return [
        await people.create_expert(pool, alias=f"E{i}", phone=f"+39060017{i:02d}", rate=Decimal(1))
        for i in range(n)
    ]


async def _clients(pool: asyncpg.Pool, n: int) -> list[int]:
    return [await people.client_by_phone(pool, f"+3933300017{i:02d}") for i in range(n)]


async def _assert_queue_true(pool: asyncpg.Pool) -> None:
    """Every expert's engaged flag says whether a request of theirs is active; a free expert's
    waiting_since is the due time of the earliest of their waiting requests."""
    rows = await pool.fetch(
        "SELECT e.id, e.engaged, e.waiting_since,"
        " EXISTS (SELECT 1 FROM requests a WHERE a.expert_id = e.id"
        "         AND a.state IN ('ringing_expert', 'ringing_client', 'connected')) AS busy,"
        " (SELECT min(w.next_attempt_at) FROM requests w WHERE w.expert_id = e.id"
        "  AND w.state = 'waiting') AS since FROM experts e ORDER BY e.id"
    )
    for r in rows:
        assert r["engaged"] is r["busy"], f"expert {r['id']}: engaged {r['engaged']}"
        if not r["busy"]:
            assert r["waiting_since"] == r["since"], f"expert {r['id']}"


async def test_the_queue_columns_follow_every_move(pool: asyncpg.Pool) -> None:
    a, b = await _experts(pool, 2)
    c1, c2, c3, c4 = await _clients(pool, 4)
    first = await waiting.create(pool, a, c1)
    second = await waiting.create(pool, a, c2)
    await waiting.create(pool, b, c3)
    await _assert_queue_true(pool)
    # A claim engages the expert (the fast path of migration 0017) ...
    job = await claims.claim_next(pool)
    assert job is not None and job.request_id == first.id
    await _assert_queue_true(pool)
    # ... and each move of the call keeps them engaged; a new request meanwhile is queued.
    await waiting.move(pool, first.id, S.RINGING_EXPERT, S.RINGING_CLIENT)
    await waiting.create(pool, a, c4)
    await _assert_queue_true(pool)
    await waiting.move(pool, first.id, S.RINGING_CLIENT, S.CONNECTED)
    await _assert_queue_true(pool)
    # The end of the call frees them, with the due time of what is left in their list.
    await waiting.move(pool, first.id, S.CONNECTED, S.COMPLETED, "done")
    await _assert_queue_true(pool)
    assert await pool.fetchval("SELECT waiting_since FROM experts WHERE id = $1", a) == (
        await pool.fetchval("SELECT next_attempt_at FROM requests WHERE id = $1", second.id)
    )
    # A missed call: back to waiting, retried later (next_attempt_at moved while ringing).
    job = await claims.claim_next(pool)
    assert job is not None
    await waiting.missed(pool, job.request_id, retry_delay=600, max_attempts=3, reason="no_answer")
    await _assert_queue_true(pool)
    # An interrupted call: back at the head of the list, due now.
    job = await claims.claim_next(pool)
    assert job is not None
    await waiting.move(pool, job.request_id, S.RINGING_EXPERT, S.RINGING_CLIENT)
    await waiting.interrupted(pool, job.request_id, S.RINGING_CLIENT)
    await _assert_queue_true(pool)
    # A claim rolled back leaves the expert as they were.
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        assert await conn.fetchrow(claims.CLAIM_SQL, None) is not None
        await tx.rollback()
    await _assert_queue_true(pool)
    # Everything claimed and ended, one by one.
    while (job := await claims.claim_next(pool)) is not None:
        await waiting.move(pool, job.request_id, S.RINGING_EXPERT, S.REFUSED, "refused")
        await _assert_queue_true(pool)
    assert await pool.fetchval("SELECT count(*) FROM experts WHERE waiting_since IS NOT NULL") == 1
    await pool.execute("DELETE FROM request_events")
    await pool.execute("DELETE FROM outbox_emails")
    await pool.execute("DELETE FROM call_attempts")
    await pool.execute("DELETE FROM requests")
    await _assert_queue_true(pool)


async def test_a_long_list_is_claimed_in_its_order(pool: asyncpg.Pool) -> None:
    (expert,) = await _experts(pool, 1)
    clients = await _clients(pool, 60)
    rnd = random.Random(17)
    for client in clients:
        view = await waiting.create(pool, expert, client)
        # Interrupted calls, ranks, due times (a few not due yet) and ties, mixed.
        await pool.execute(
            "UPDATE requests SET priority = $2, list_rank = $3,"
            " next_attempt_at = date_trunc('minute', now()) + make_interval(mins => $4)"
            " WHERE id = $1",
            view.id,
            rnd.random() < 0.2,
            rnd.randrange(2),
            rnd.choice([-30, -20, -20, -10, -10, -5, 60]),
        )
    rows = await pool.fetch(
        "SELECT id, priority, list_rank, next_attempt_at FROM requests"
        " WHERE next_attempt_at <= now()"
    )
    expected = [
        r["id"]
        for r in sorted(
            rows,
            key=lambda r: (not r["priority"], r["list_rank"], r["next_attempt_at"], r["id"]),
        )
    ]
    assert 30 < len(expected) < 60
    claimed: list[int] = []
    while (job := await claims.claim_next(pool)) is not None:
        claimed.append(job.request_id)
        await waiting.move(pool, job.request_id, S.RINGING_EXPERT, S.REFUSED, "refused")
    assert claimed == expected
    due: datetime | None = await claims.next_due(pool)
    assert due is not None and due > await pool.fetchval("SELECT now()")


async def _wake_is_the_earliest(pool: asyncpg.Pool, ttl_hours: float) -> datetime | None:
    parts = [
        await claims.next_due(pool),
        await offers.next_due(pool),
        await expiry.next_expiry(pool, ttl_hours),
    ]
    found = await wake.next_wake(pool, None, ttl_hours)
    assert found == min((p for p in parts if p is not None), default=None)
    return found


async def test_one_wake_statement_is_the_earliest_of_the_three(pool: asyncpg.Pool) -> None:
    assert await _wake_is_the_earliest(pool, 12) is None  # nothing waits: no timer
    (expert,) = await _experts(pool, 1)
    await pool.execute("UPDATE experts SET category = 'tarot'")
    c1, c2 = await _clients(pool, 2)
    later = await pool.fetchval("SELECT now() + interval '1 hour'")
    own = await waiting.create(pool, expert, c1, not_before=later)
    # The expert's own request, due in an hour, comes before its expiry in 12 hours ...
    assert await _wake_is_the_earliest(pool, 12) == own.next_attempt_at
    # ... and after an expiry in 36 seconds.
    soon = await _wake_is_the_earliest(pool, 0.01)
    assert soon is not None and soon == own.created_at + timedelta(seconds=36)
    # A category request some free expert could take, due now, comes first.
    cat = await offers.create(pool, "tarot", c2, None)
    assert await _wake_is_the_earliest(pool, 12) == cat.next_attempt_at
    await waiting.move(pool, own.id, S.WAITING, S.LOST, "gone")
    await waiting.move(pool, cat.id, S.WAITING, S.LOST, "gone")
    assert await _wake_is_the_earliest(pool, 12) is None
