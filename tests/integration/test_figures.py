"""The day's figures of the admin overview, on a hand-built day in Rome.

Rows are inserted directly with chosen timestamps. The day is 2025-03-10 (CET, UTC+1),
so a row that is "today" in Rome may be "yesterday" in UTC and the other way round.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import count
from zoneinfo import ZoneInfo

import asyncpg

from ivr_engine.store import admin

ROME = ZoneInfo("Europe/Rome")
DAY = date(2025, 3, 10)
_phones = count(1)


def rome(day: date, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=ROME)


async def request(
    pool: asyncpg.Pool,
    expert_id: int,
    created: datetime,
    state: str = "waiting",
    *,
    ended: datetime | None = None,
    reason: str = "",
    bridged: datetime | None = None,
) -> int:
    client_id = await pool.fetchval(
        "INSERT INTO clients (alias, phone) VALUES ('c', $1) RETURNING id",
        f"+39333{next(_phones):07d}",
    )
    request_id: int = await pool.fetchval(
        "INSERT INTO requests (expert_id, client_id, state, end_reason, created_at, updated_at,"
        " ended_at) VALUES ($1, $2, $3, $4, $5, $5, $6) RETURNING id",
        expert_id,
        client_id,
        state,
        reason,
        created,
        ended,
    )
    if bridged is not None:
        await pool.execute(
            "INSERT INTO consultations (request_id, expert_id, client_id, bridge_id,"
            " expert_channel_id, client_channel_id, rate_per_minute, bridge_start)"
            " VALUES ($1, $2, $3, $4, $4 || '-e', $4 || '-c', 1.50, $5)",
            request_id,
            expert_id,
            client_id,
            f"bridge-{request_id}",
            bridged,
        )
    return request_id


async def expert(pool: asyncpg.Pool, phone: str) -> int:
    return int(
        await pool.fetchval(
            "INSERT INTO experts (alias, phone, rate_per_minute) VALUES ('e', $1, 1.50)"
            " RETURNING id",
            phone,
        )
    )


async def test_every_figure_of_a_hand_built_day(pool: asyncpg.Pool) -> None:
    anna = await expert(pool, "+390600000001")
    bruno = await expert(pool, "+390600000002")
    yesterday, tomorrow = DAY - timedelta(days=1), DAY + timedelta(days=1)

    # Answered after 30 s, completed.
    await request(
        pool,
        anna,
        rome(DAY, 9, 0),
        "completed",
        ended=rome(DAY, 9, 10),
        reason="ended by client",
        bridged=rome(DAY, 9, 0, 30),
    )
    # Answered after 61 s, still connected (not ended).
    await request(pool, bruno, rome(DAY, 10, 0), "connected", bridged=rome(DAY, 10, 1, 1))
    await request(
        pool, anna, rome(DAY, 11, 0), "refused", ended=rome(DAY, 11, 1), reason="expert_refused"
    )
    await request(
        pool, anna, rome(DAY, 12, 0), "lost", ended=rome(DAY, 12, 5), reason="client_left"
    )
    await request(
        pool, anna, rome(DAY, 13, 0), "lost", ended=rome(DAY, 13, 2), reason="client_hung_up"
    )
    await request(
        pool, anna, rome(DAY, 14, 0), "lost", ended=rome(DAY, 14, 30), reason="expert_unreachable"
    )
    # 00:30 in Rome is still the day before in UTC: it counts today.
    await request(pool, bruno, rome(DAY, 0, 30))
    # Wholly yesterday: counts nowhere.
    await request(
        pool,
        anna,
        rome(yesterday, 22, 0),
        "lost",
        ended=rome(yesterday, 23, 30),
        reason="client_left",
    )
    await request(
        pool,
        bruno,
        rome(yesterday, 20, 0),
        "completed",
        ended=rome(yesterday, 20, 30),
        reason="ended by expert",
        bridged=rome(yesterday, 20, 5),
    )
    # 00:10 tomorrow in Rome is still today in UTC: it must not count.
    await request(
        pool, anna, rome(tomorrow, 0, 10), "lost", ended=rome(tomorrow, 0, 20), reason="client_left"
    )

    got = await admin.day_figures(pool, DAY, ROME)

    assert got.day == DAY
    assert got.received == 7
    assert got.answered == 2
    assert got.refused == 1
    assert got.lost == 3
    assert got.ended == 5  # completed, refused, three lost
    assert got.abandoned == 2  # client_left and client_hung_up
    assert got.speed_of_answer == 46  # (30 + 61) / 2 = 45.5, half up
    assert got.abandonment_percent == Decimal("40.0")


async def test_a_request_answered_after_midnight_counts_on_the_day_it_was_answered(
    pool: asyncpg.Pool,
) -> None:
    anna = await expert(pool, "+390600000003")
    yesterday = DAY - timedelta(days=1)
    await request(
        pool,
        anna,
        rome(yesterday, 23, 58),
        "completed",
        ended=rome(DAY, 0, 20),
        reason="ended by client",
        bridged=rome(DAY, 0, 1, 15),
    )

    got = await admin.day_figures(pool, DAY, ROME)

    assert (got.received, got.answered, got.ended) == (0, 1, 1)
    assert got.speed_of_answer == 195  # 3 min 15 s, counted today with its answer


async def test_an_empty_day_has_no_rate_and_no_average(pool: asyncpg.Pool) -> None:
    got = await admin.day_figures(pool, DAY, ROME)

    assert (got.received, got.answered, got.refused, got.lost, got.ended) == (0, 0, 0, 0, 0)
    assert got.speed_of_answer is None
    assert got.abandonment_percent is None


def test_rates_and_means_round_half_up() -> None:
    assert admin.percent(1, 3) == Decimal("33.3")
    assert admin.percent(2, 3) == Decimal("66.7")
    assert admin.percent(1, 8) == Decimal("12.5")
    assert admin.percent(0, 0) is None
    assert admin.mean_seconds(Decimal("5"), 2) == 3
    assert admin.mean_seconds(Decimal("0"), 0) is None


def test_a_day_in_rome_has_23_or_25_hours_when_the_clocks_change() -> None:
    for day, hours in ((date(2025, 3, 30), 23), (date(2025, 10, 26), 25)):
        start, end = admin.day_bounds(day, ROME)
        assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=hours)
