"""What the service's staff see and change: every expert, and the day's figures.

The figures of a day count what *happened* that day (a request received, a consultation
bridged, a request ended), each by its own timestamp, within the day's bounds in the
service's timezone:

    received    requests created that day (requests.created_at)
    answered    consultations whose bridge started that day (consultations.bridge_start):
                the request reached a consultation
    refused     requests that ended that day as 'refused' (by the expert, one by one or
                all at once at closing time)
    lost        requests that ended that day as 'lost' (the client left or hung up before
                being connected, the expert never answered or hung up before the bridge)
    speed of answer   mean of bridge_start − requests.created_at over the answered ones
    abandonment rate  requests that ended that day with end_reason 'client_left' or
                'client_hung_up', divided by every request that ended that day (any final
                state); none when no request ended

A request created the day before and answered today counts as answered today (its wait
then counts in today's speed of answer) but not as received today.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

import asyncpg

from ivr_engine.store import accounts

ABANDONED = ("client_left", "client_hung_up")


# -- experts ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExpertFields:
    """What the staff edit on an expert (already validated)."""

    alias: str
    category: str
    phone: str
    rate: Decimal
    language: str
    email: str
    acceptance_ivr: bool


@dataclass(frozen=True)
class Expert:
    id: int
    fields: ExpertFields
    has_login: bool


_EXPERT_SQL = """
SELECT e.id, e.alias, e.category, e.phone, e.rate_per_minute, e.language, e.email,
       e.acceptance_ivr, a.id IS NOT NULL AS has_login
FROM experts e LEFT JOIN accounts a ON a.expert_id = e.id
"""


def _expert(row: asyncpg.Record) -> Expert:
    fields = ExpertFields(
        alias=row["alias"],
        category=row["category"],
        phone=row["phone"],
        rate=row["rate_per_minute"],
        language=row["language"],
        email=row["email"],
        acceptance_ivr=row["acceptance_ivr"],
    )
    return Expert(row["id"], fields, row["has_login"])


async def experts(pool: asyncpg.Pool) -> list[Expert]:
    return [_expert(r) for r in await pool.fetch(_EXPERT_SQL + " ORDER BY lower(e.alias), e.id")]


async def expert(pool: asyncpg.Pool, expert_id: int) -> Expert | None:
    row = await pool.fetchrow(_EXPERT_SQL + " WHERE e.id = $1", expert_id)
    return _expert(row) if row is not None else None


async def create_expert(pool: asyncpg.Pool, fields: ExpertFields, password: str | None) -> int:
    """The expert and, with a password, their panel sign-in: both or neither.

    Raises Conflict (nothing created) when the email is already some account's."""
    async with pool.acquire() as conn, conn.transaction():
        expert_id = int(
            await conn.fetchval(
                "INSERT INTO experts (alias, category, phone, rate_per_minute, language,"
                " email, acceptance_ivr) VALUES ($1,$2,$3,$4,$5,$6,$7) RETURNING id",
                fields.alias,
                fields.category,
                fields.phone,
                fields.rate,
                fields.language,
                fields.email,
                fields.acceptance_ivr,
            )
        )
        if password:
            await accounts.set_expert_login(conn, expert_id, fields.email, password)
    return expert_id


async def update_expert(
    pool: asyncpg.Pool, expert_id: int, fields: ExpertFields, password: str | None
) -> bool:
    """Save the expert; their sign-in follows the new email (and password, if given).

    False when there is no such expert; Conflict (nothing saved) on an email in use."""
    async with pool.acquire() as conn, conn.transaction():
        found = await conn.fetchval(
            "UPDATE experts SET alias = $2, category = $3, phone = $4, rate_per_minute = $5,"
            " language = $6, email = $7, acceptance_ivr = $8 WHERE id = $1 RETURNING id",
            expert_id,
            fields.alias,
            fields.category,
            fields.phone,
            fields.rate,
            fields.language,
            fields.email,
            fields.acceptance_ivr,
        )
        if found is None:
            return False
        if fields.email:  # an expert with a sign-in always has an email (the form checks)
            await accounts.set_expert_login(conn, expert_id, fields.email, password)
    return True


async def set_acceptance(pool: asyncpg.Pool, expert_id: int, on: bool) -> bool:
    """Switch the accept-by-keypress prompt; False when there is no such expert."""
    found = await pool.fetchval(
        "UPDATE experts SET acceptance_ivr = $2 WHERE id = $1 RETURNING id", expert_id, on
    )
    return found is not None


# -- the day's figures --------------------------------------------------------------------
@dataclass(frozen=True)
class DayCounts:
    """Raw counts of one day, as the database gives them."""

    received: int
    answered: int
    refused: int
    lost: int
    ended: int
    abandoned: int
    answer_wait_seconds: Decimal  # summed over the answered requests


@dataclass(frozen=True)
class Figures:
    day: date
    received: int
    answered: int
    refused: int
    lost: int
    ended: int
    abandoned: int
    speed_of_answer: int | None  # whole seconds; None when nothing was answered
    abandonment_percent: Decimal | None  # one decimal; None when nothing ended


def percent(part: int, whole: int) -> Decimal | None:
    """``part`` of ``whole`` in percent, one decimal, half up; None for an empty whole."""
    if whole == 0:
        return None
    return (Decimal(part) * 100 / whole).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def mean_seconds(total: Decimal, count: int) -> int | None:
    """The mean in whole seconds, half up; None when there is nothing to average."""
    if count == 0:
        return None
    return int((total / count).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def figures(day: date, counts: DayCounts) -> Figures:
    return Figures(
        day=day,
        received=counts.received,
        answered=counts.answered,
        refused=counts.refused,
        lost=counts.lost,
        ended=counts.ended,
        abandoned=counts.abandoned,
        speed_of_answer=mean_seconds(counts.answer_wait_seconds, counts.answered),
        abandonment_percent=percent(counts.abandoned, counts.ended),
    )


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of a calendar day in ``zone``: 23 or 25 hours on DST change days."""
    start = datetime.combine(day, time(0), zone)
    end = datetime.combine(day + timedelta(days=1), time(0), zone)
    return start, end


_COUNTS_SQL = """
SELECT
  (SELECT count(*) FROM requests WHERE created_at >= $1 AND created_at < $2) AS received,
  (SELECT count(*) FROM consultations WHERE bridge_start >= $1 AND bridge_start < $2)
    AS answered,
  (SELECT coalesce(sum(extract(epoch FROM c.bridge_start - r.created_at)), 0)
     FROM consultations c JOIN requests r ON r.id = c.request_id
    WHERE c.bridge_start >= $1 AND c.bridge_start < $2) AS answer_wait,
  count(*) FILTER (WHERE state = 'refused') AS refused,
  count(*) FILTER (WHERE state = 'lost') AS lost,
  count(*) AS ended,
  count(*) FILTER (WHERE end_reason = ANY($3::text[])) AS abandoned
FROM requests WHERE ended_at >= $1 AND ended_at < $2
"""


async def day_figures(pool: asyncpg.Pool, day: date, zone: ZoneInfo) -> Figures:
    start, end = day_bounds(day, zone)
    row = await pool.fetchrow(_COUNTS_SQL, start, end, list(ABANDONED))
    counts = DayCounts(
        received=row["received"],
        answered=row["answered"],
        refused=row["refused"],
        lost=row["lost"],
        ended=row["ended"],
        abandoned=row["abandoned"],
        answer_wait_seconds=Decimal(row["answer_wait"]),
    )
    return figures(day, counts)
