"""Engines, leases and ownership in PostgreSQL: who may take whose calls, and how an
interrupted call goes back to the waiting list."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import asyncpg

from ivr_engine.domain.requests import RequestState
from ivr_engine.store import claims, engines, people, waiting

S = RequestState
LEASE = 5.0


async def _waiting(pool: asyncpg.Pool, phone: str = "+39060001") -> tuple[int, int]:
    expert = await people.create_expert(pool, alias="A", phone=phone, rate=Decimal(1))
    client = await people.client_by_phone(pool, "+3933301" + phone[-2:])
    return expert, (await waiting.create(pool, expert, client)).id


async def _engine(pool: asyncpg.Pool) -> uuid.UUID:
    engine_id = uuid.uuid4()
    await engines.register(pool, engine_id, "ivr-engine", "host", 1)
    return engine_id


async def test_a_live_engines_calls_are_never_abandoned(pool: asyncpg.Pool) -> None:
    alive, other = await _engine(pool), await _engine(pool)
    _, request_id = await _waiting(pool)
    job = await claims.claim_next(pool, alive)
    assert job is not None and job.request_id == request_id
    assert await pool.fetchval("SELECT owner FROM requests WHERE id = $1", request_id) == alive
    assert await engines.abandoned(pool, other, LEASE) == []
    assert not await engines.take(pool, request_id, alive, other, LEASE)


async def test_a_stopped_engines_calls_are_taken_at_once_by_one_engine(
    pool: asyncpg.Pool,
) -> None:
    gone, first, second = await _engine(pool), await _engine(pool), await _engine(pool)
    _, request_id = await _waiting(pool)
    assert await claims.claim_next(pool, gone) is not None
    await engines.stopped(pool, gone)
    # Even before a trusted lease: a clean stop is proof enough.
    (item,) = await engines.abandoned(pool, first, LEASE, stale_ok=False)
    assert (item.request_id, item.state, item.owner) == (request_id, S.RINGING_EXPERT, gone)
    assert await engines.take(pool, request_id, gone, first, LEASE)
    assert not await engines.take(pool, request_id, gone, second, LEASE)  # first was quicker
    assert await engines.abandoned(pool, second, LEASE) == []


async def test_a_silent_engine_is_dead_only_after_its_lease_and_to_a_trusted_engine(
    pool: asyncpg.Pool,
) -> None:
    silent, me = await _engine(pool), await _engine(pool)
    _, request_id = await _waiting(pool)
    assert await claims.claim_next(pool, silent) is not None
    assert await engines.abandoned(pool, me, LEASE) == []  # its heartbeat is fresh
    await pool.execute(
        "UPDATE engines SET heartbeat_at = now() - interval '6 seconds' WHERE id = $1", silent
    )
    assert await engines.abandoned(pool, me, LEASE, stale_ok=False) == []
    (item,) = await engines.abandoned(pool, me, LEASE, stale_ok=True)
    assert item.request_id == request_id
    await engines.heartbeat(pool, silent, timeout=5, watched=[])  # only slow: it is back
    assert not await engines.take(pool, request_id, silent, me, LEASE)


async def test_an_interrupted_call_goes_back_to_the_head_uncounted(pool: asyncpg.Pool) -> None:
    me = await _engine(pool)
    _, earlier = await _waiting(pool, "+39060001")
    _, later = await _waiting(pool, "+39060002")
    job = await claims.claim_next(pool, me)
    assert job is not None and job.request_id == earlier
    await waiting.move(pool, earlier, S.RINGING_EXPERT, S.WAITING, "no_answer")
    await pool.execute(
        "UPDATE requests SET next_attempt_at = now() + interval '1 hour' WHERE id = $1", earlier
    )
    second = await claims.claim_next(pool, me)
    assert second is not None and second.request_id == later
    await pool.execute(
        "INSERT INTO call_attempts (request_id, leg, purpose, channel_id, dial_string)"
        " VALUES ($1, 'expert', 'offer', 'ivr-x-1', 'PJSIP/x')",
        later,
    )
    view = await waiting.interrupted(pool, later, S.RINGING_EXPERT)
    assert view.state is S.WAITING and view.attempts == 0
    row = await pool.fetchrow("SELECT priority, owner FROM requests WHERE id = $1", later)
    assert row["priority"] is True and row["owner"] is None
    outcome = await pool.fetchval("SELECT outcome FROM call_attempts WHERE channel_id = 'ivr-x-1'")
    assert outcome == "interrupted"
    assert await waiting.interruptions(pool, later) == 1
    # Both are due now; the interrupted one is rung first, and the priority is then spent.
    await pool.execute("UPDATE requests SET next_attempt_at = now() - interval '1 minute'")
    again = await claims.claim_next(pool, me)
    assert again is not None and again.request_id == later and again.attempt_no == 1
    assert await pool.fetchval("SELECT priority FROM requests WHERE id = $1", later) is False


async def test_the_heartbeat_notes_that_bridges_are_up(pool: asyncpg.Pool) -> None:
    me = await _engine(pool)
    _, request_id = await _waiting(pool)
    await claims.claim_next(pool, me)
    await pool.execute("UPDATE requests SET state = 'connected' WHERE id = $1", request_id)
    await pool.execute(
        "INSERT INTO consultations (request_id, expert_id, client_id, bridge_id,"
        " expert_channel_id, client_channel_id, rate_per_minute, bridge_start, seen_at)"
        " SELECT id, expert_id, client_id, 'b', 'e', 'c', 1, now() - interval '1 minute',"
        " now() - interval '1 minute' FROM requests WHERE id = $1",
        request_id,
    )
    before = await pool.fetchval("SELECT seen_at FROM consultations")
    await engines.heartbeat(pool, me, timeout=5, watched=[])
    assert await pool.fetchval("SELECT seen_at FROM consultations") == before  # unwatched
    beat = "SELECT heartbeat_at FROM engines WHERE id = $1"
    await pool.execute("UPDATE engines SET heartbeat_at = now() - interval '1 minute'")
    await engines.heartbeat(pool, me, timeout=5, watched=[request_id])
    after = await pool.fetchval("SELECT seen_at FROM consultations")
    assert after > before
    assert await pool.fetchval(beat, me) > after - timedelta(seconds=5)  # the lease too
