"""Calls in against a real PostgreSQL: the new_first order in the claim query, a holding
caller's place and their move to a callback, abandoned holders, and the admin figures."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from ivr_engine.domain.requests import RequestState
from ivr_engine.errors import Conflict
from ivr_engine.store import claims, engines, holding, people, waiting
from ivr_engine.store.waiting import Holding

pytestmark = pytest.mark.integration
S = RequestState


async def _expert(pool: asyncpg.Pool, phone: str = "+3906000161") -> int:
    return await people.create_expert(
        pool, alias="Anna", phone=phone, rate=Decimal("1.50"), email="anna@example.org"
    )


async def _past_consultation(pool: asyncpg.Pool, expert: int, client: int, seconds: int) -> None:
    """A finished consultation of ``client`` (what makes them a returning client)."""
    view = await waiting.create(pool, expert, client)
    await pool.execute("UPDATE requests SET state = 'completed' WHERE id = $1", view.id)
    await pool.execute(
        "INSERT INTO consultations (request_id, expert_id, client_id, bridge_id,"
        " expert_channel_id, client_channel_id, rate_per_minute, bridge_start, bridge_end,"
        " billed_seconds) VALUES ($1, $2, $3, $4, 'e', 'c', 1.50, now(), now(), $5)",
        view.id,
        expert,
        client,
        f"b-{view.id}",
        seconds,
    )


async def _engine(pool: asyncpg.Pool) -> uuid.UUID:
    engine = uuid.uuid4()
    await engines.register(pool, engine, "ivr-engine", "test", 1)
    return engine


async def test_new_first_serves_a_new_client_before_an_older_returning_one(
    pool: asyncpg.Pool,
) -> None:
    expert = await _expert(pool)
    returning = await people.client_by_phone(pool, "+393330000301", alias="Old")
    new = await people.client_by_phone(pool, "+393330000302", alias="New")
    await _past_consultation(pool, expert, returning, 120)
    older = await waiting.create(pool, expert, returning, policy="new_first")
    newer = await waiting.create(pool, expert, new, policy="new_first")
    assert older.created_at <= newer.created_at
    job = await claims.claim_next(pool)
    assert job is not None and job.request_id == newer.id


async def test_fifo_keeps_arrival_order_and_interrupted_calls_still_come_first(
    pool: asyncpg.Pool,
) -> None:
    expert = await _expert(pool)
    returning = await people.client_by_phone(pool, "+393330000311")
    new = await people.client_by_phone(pool, "+393330000312")
    third = await people.client_by_phone(pool, "+393330000313")
    await _past_consultation(pool, expert, returning, 60)
    first = await waiting.create(pool, expert, returning, policy="fifo")
    await waiting.create(pool, expert, new, policy="fifo")
    job = await claims.claim_next(pool)
    assert job is not None and job.request_id == first.id
    # An interrupted call goes back ahead of everyone, new clients included.
    await waiting.interrupted(pool, first.id, S.RINGING_EXPERT)
    await waiting.create(pool, expert, third, policy="new_first")
    job = await claims.claim_next(pool)
    assert job is not None and job.request_id == first.id


async def test_a_holding_caller_is_claimed_only_by_the_engine_holding_them(
    pool: asyncpg.Pool,
) -> None:
    expert = await _expert(pool)
    client = await people.client_by_phone(pool, "+393330000321")
    here, there = await _engine(pool), await _engine(pool)
    view = await waiting.create(pool, expert, client, holding=Holding("chan-321", here))
    assert await claims.claim_next(pool, there) is None
    assert await claims.next_due(pool, there) is None  # nor wakes the other engine
    job = await claims.claim_next(pool, here)
    assert job is not None and job.request_id == view.id and job.holding_channel == "chan-321"


async def test_place_counts_who_is_ahead_and_the_recent_lengths(pool: asyncpg.Pool) -> None:
    expert = await _expert(pool)
    a, b, c = [await people.client_by_phone(pool, f"+39333000033{i}") for i in range(3)]
    await _past_consultation(pool, expert, c, 300)
    await waiting.create(pool, expert, a)
    await waiting.create(pool, expert, b)
    mine = await waiting.create(pool, expert, c, holding=Holding("chan-c", None))
    place = await holding.place(pool, mine.id, "chan-c")
    assert (place.state, place.ahead, place.expert_busy, place.holding) == (
        S.WAITING,
        2,
        False,
        True,
    )
    assert place.recent_seconds == [300]
    assert await claims.claim_next(pool) is not None  # the expert takes the first one
    assert (await holding.place(pool, mine.id, "chan-c")).expert_busy


async def test_hanging_up_while_holding_is_a_missed_call_at_the_same_place(
    pool: asyncpg.Pool,
) -> None:
    expert = await _expert(pool)
    client = await people.client_by_phone(pool, "+393330000341")
    view = await waiting.create(pool, expert, client, holding=Holding("chan-341", None))
    before = await pool.fetchrow("SELECT * FROM requests WHERE id = $1", view.id)
    assert await holding.stop_holding(pool, view.id, "chan-341", missed_minutes=15)
    row = await pool.fetchrow("SELECT * FROM requests WHERE id = $1", view.id)
    assert row["holding_channel"] is None and row["state"] == "waiting"
    assert row["next_attempt_at"] == before["next_attempt_at"]  # the place is kept
    assert row["callback_by"] - row["missed_at"] == timedelta(minutes=15)
    # Twice (the hangup racing key 1): the second one finds nothing to do.
    assert not await holding.stop_holding(pool, view.id, "chan-341", missed_minutes=15)
    details = await pool.fetch(
        "SELECT detail FROM request_events WHERE request_id = $1 ORDER BY id", view.id
    )
    assert [d["detail"] for d in details] == ["created", "missed_call"]


async def test_key_1_is_a_callback_without_a_missed_call(pool: asyncpg.Pool) -> None:
    expert = await _expert(pool)
    client = await people.client_by_phone(pool, "+393330000351")
    view = await waiting.create(pool, expert, client, holding=Holding("chan-351", None))
    assert await holding.stop_holding(pool, view.id, "chan-351", missed_minutes=None)
    row = await pool.fetchrow("SELECT * FROM requests WHERE id = $1", view.id)
    assert row["holding_channel"] is None and row["missed_at"] is None


async def test_a_connected_request_is_released_not_called_back(pool: asyncpg.Pool) -> None:
    expert = await _expert(pool)
    client = await people.client_by_phone(pool, "+393330000361")
    view = await waiting.create(pool, expert, client, holding=Holding("chan-361", None))
    await claims.claim_next(pool)
    await waiting.move(pool, view.id, S.RINGING_EXPERT, S.RINGING_CLIENT)
    assert not await holding.stop_holding(pool, view.id, "chan-361", missed_minutes=15)
    row = await pool.fetchrow("SELECT * FROM requests WHERE id = $1", view.id)
    assert row["holding_channel"] is None and row["missed_at"] is None


async def test_the_same_caller_cannot_hold_twice_for_one_expert(pool: asyncpg.Pool) -> None:
    expert = await _expert(pool)
    client = await people.client_by_phone(pool, "+393330000371")
    await waiting.create(pool, expert, client, holding=Holding("chan-a", None))
    with pytest.raises(Conflict):
        await waiting.create(pool, expert, client, holding=Holding("chan-b", None))


async def test_holders_of_a_stopped_engine_are_adopted_once(pool: asyncpg.Pool) -> None:
    expert = await _expert(pool)
    client = await people.client_by_phone(pool, "+393330000381")
    old, me, other = await _engine(pool), await _engine(pool), await _engine(pool)
    view = await waiting.create(pool, expert, client, holding=Holding("chan-381", old))
    assert await holding.abandoned_holders(pool, me, 15) == []  # its engine is alive
    await engines.stopped(pool, old)
    found = await holding.abandoned_holders(pool, me, 15, stale_ok=False)
    assert [(h.request_id, h.channel) for h in found] == [(view.id, "chan-381")]
    assert await holding.adopt_holder(pool, found[0], me)
    assert not await holding.adopt_holder(pool, found[0], other)  # taken once
    assert await holding.abandoned_holders(pool, other, 15) == []  # I am alive


async def test_figures_per_day(pool: asyncpg.Pool) -> None:
    expert = await _expert(pool)
    zone = ZoneInfo("Europe/Rome")
    today = datetime.now(zone).date()
    for channel, withheld in (("in-1", False), ("in-2", False), ("in-3", True)):
        await holding.record_call(
            pool, channel, dialled="0200", caller="" if withheld else "+39333", withheld=withheld
        )
    await pool.execute(
        "UPDATE inbound_calls SET bridged_at = started_at + interval '20 seconds'"
        " WHERE channel_id = 'in-1'"
    )
    await holding.end_call(pool, "in-1", "hung_up")  # bridged stays bridged
    await holding.end_call(pool, "in-2", "abandoned")
    await holding.end_call(pool, "in-3", "declined")
    # Two missed calls: one called back in time, one whose deadline has passed unanswered.
    a = await people.client_by_phone(pool, "+393330000391")
    b = await people.client_by_phone(pool, "+393330000392")
    ra = await waiting.create(pool, expert, a, holding=Holding("m-a", None))
    rb = await waiting.create(pool, expert, b, holding=Holding("m-b", None))
    await holding.stop_holding(pool, ra.id, "m-a", missed_minutes=15)
    await holding.stop_holding(pool, rb.id, "m-b", missed_minutes=15)
    await pool.execute(
        "INSERT INTO call_attempts (request_id, leg, purpose, channel_id, dial_string)"
        " VALUES ($1, 'client', 'connect', 'cb-a', 'x')",
        ra.id,
    )
    await pool.execute(
        "UPDATE requests SET callback_by = now() - interval '1 minute' WHERE id = $1", rb.id
    )
    (day, yesterday) = await holding.figures(pool, [today, today - timedelta(days=1)], zone)
    assert (yesterday.calls_in, yesterday.missed, yesterday.called_back_share) == (0, 0, None)
    assert (day.day, day.calls_in, day.answered, day.abandoned, day.withheld) == (
        today,
        3,
        1,
        1,
        1,
    )
    assert day.average_answer_seconds == pytest.approx(20)
    assert (day.missed, day.called_back_in_time, day.missed_due) == (2, 1, 2)
    assert day.called_back_share == 0.5
    outcomes = await pool.fetch("SELECT channel_id, outcome FROM inbound_calls ORDER BY id")
    assert [r["outcome"] for r in outcomes] == ["bridged", "abandoned", "declined"]
