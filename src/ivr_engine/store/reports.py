"""What the operator commands read: requests by state and expert, consultations of a period.

Read-only; the billing detail of a consultation is the one the API shows
(``consultations.detail``), so an export and the API never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from ivr_engine.store import consultations


@dataclass(frozen=True)
class RequestRow:
    id: int
    state: str
    expert_id: int | None  # None: a category request nobody has won yet
    expert_alias: str
    client_id: int
    client_alias: str
    attempts: int
    next_attempt_at: datetime
    end_reason: str
    created_at: datetime


async def requests(
    pool: asyncpg.Pool,
    *,
    states: list[str] | None = None,
    expert_id: int | None = None,
    limit: int = 100,
) -> list[RequestRow]:
    """Newest first, filtered by state(s) and expert; no client phone number."""
    rows = await pool.fetch(
        "SELECT r.id, r.state, r.expert_id,"
        " coalesce(e.alias, 'category ' || r.category) AS expert_alias, r.client_id,"
        " c.alias AS client_alias, r.attempts, r.next_attempt_at, r.end_reason, r.created_at"
        " FROM requests r LEFT JOIN experts e ON e.id = r.expert_id"
        " JOIN clients c ON c.id = r.client_id"
        " WHERE ($1::text[] IS NULL OR r.state = ANY($1::text[]))"
        " AND ($2::bigint IS NULL OR r.expert_id = $2)"
        " ORDER BY r.id DESC LIMIT $3",
        states,
        expert_id,
        limit,
    )
    return [RequestRow(**dict(row)) for row in rows]


async def consultations_between(
    pool: asyncpg.Pool, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """The billing detail of every consultation whose bridge started in [start, end),
    oldest first."""
    rows = await pool.fetch(
        consultations._DETAIL_SQL
        + " WHERE c.bridge_start >= $1 AND c.bridge_start < $2 ORDER BY c.bridge_start, c.id",
        start,
        end,
    )
    return [consultations.detail(row) for row in rows]
