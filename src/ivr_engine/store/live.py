"""What the live pages show: an expert's current call and waiting list, and the calls in
progress across all experts. Read-only; every query of an expert's page is scoped by the
signed-in expert's id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

ACTIVE = ("ringing_expert", "ringing_client", "connected")


@dataclass(frozen=True)
class Waiting:
    request_id: int
    position: int
    client_id: int
    client_alias: str
    since: datetime
    attempts: int
    next_attempt_at: datetime
    holding: bool = False  # on the line now (else waits to be called back)
    callback_by: datetime | None = None  # a missed call: the promise to call back by then


@dataclass(frozen=True)
class Active:
    request_id: int
    expert_id: int
    expert_alias: str
    client_id: int
    client_alias: str
    state: str
    since: datetime  # the bridge start when connected, else when the state was entered


@dataclass(frozen=True)
class ExpertCalls:
    active: Active | None
    waiting: list[Waiting]


_ACTIVE_SQL = """
SELECT r.id, r.expert_id, e.alias AS expert_alias, r.client_id, k.alias AS client_alias,
       r.state, coalesce(c.bridge_start, r.updated_at) AS since
FROM requests r
JOIN experts e ON e.id = r.expert_id
JOIN clients k ON k.id = r.client_id
LEFT JOIN consultations c ON c.request_id = r.id
WHERE r.state = ANY($1::text[])
"""


def _active(row: asyncpg.Record) -> Active:
    return Active(
        request_id=row["id"],
        expert_id=row["expert_id"],
        expert_alias=row["expert_alias"],
        client_id=row["client_id"],
        client_alias=row["client_alias"] or "—",
        state=row["state"],
        since=row["since"],
    )


async def expert_calls(pool: asyncpg.Pool, expert_id: int) -> ExpertCalls:
    active = await pool.fetchrow(_ACTIVE_SQL + " AND r.expert_id = $2", list(ACTIVE), expert_id)
    rows = await pool.fetch(
        "SELECT r.id, r.client_id, k.alias, r.created_at, r.attempts, r.next_attempt_at,"
        " r.holding_channel IS NOT NULL AS holding, r.callback_by"
        " FROM requests r JOIN clients k ON k.id = r.client_id"
        " WHERE r.expert_id = $1 AND r.state = 'waiting'"
        # The order the dispatcher serves them in (store/claims.py).
        " ORDER BY r.priority DESC, r.list_rank, r.next_attempt_at, r.id",
        expert_id,
    )
    waiting = [
        Waiting(
            request_id=r["id"],
            position=i,
            client_id=r["client_id"],
            client_alias=r["alias"] or "—",
            since=r["created_at"],
            attempts=r["attempts"],
            next_attempt_at=r["next_attempt_at"],
            holding=r["holding"],
            callback_by=r["callback_by"],
        )
        for i, r in enumerate(rows, start=1)
    ]
    return ExpertCalls(_active(active) if active else None, waiting)


async def all_active(pool: asyncpg.Pool) -> list[Active]:
    rows = await pool.fetch(_ACTIVE_SQL + " ORDER BY since", list(ACTIVE))
    return [_active(r) for r in rows]


async def request_owner(pool: asyncpg.Pool, request_id: int) -> int | None:
    value = await pool.fetchval("SELECT expert_id FROM requests WHERE id = $1", request_id)
    return None if value is None else int(value)
