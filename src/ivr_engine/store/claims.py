"""Claims: which waiting request is rung next, and by which engine.

A claim moves one due request whose expert is free to ``ringing_expert`` in one
statement. The partial unique index on active requests makes a concurrent claim for the
same expert (by this engine or another one) fail instead of ringing the expert twice.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from ivr_engine.domain.job import Job
from ivr_engine.domain.requests import RequestState
from ivr_engine.store.waiting import ACTIVE, event

S = RequestState


async def claim_next(pool: asyncpg.Pool, owner: uuid.UUID | None = None) -> Job | None:
    """Take the next due request whose expert is free, moving it to ringing_expert and
    recording ``owner``, the engine that will run its call. Requests whose call an engine
    interrupted come first, then by rank (``new_first``: new clients), then by due time. A
    caller holding on the line is taken only by the engine holding their channel."""
    async with pool.acquire() as conn:
        for _ in range(5):
            try:
                async with conn.transaction():
                    row = await conn.fetchrow(_CLAIM_SQL, ACTIVE, owner)
                    if row is None:
                        return None
                    await event(
                        conn, row["id"], S.WAITING, S.RINGING_EXPERT, f"attempt {row['attempts']}"
                    )
                    return _job(row)
            except asyncpg.UniqueViolationError:
                continue  # another engine claimed for this expert first
    return None


async def next_due(pool: asyncpg.Pool, owner: uuid.UUID | None = None) -> datetime | None:
    """When the earliest request whose expert is free becomes due (None: nothing waits)."""
    return await pool.fetchval(_NEXT_DUE_SQL, ACTIVE, owner)  # type: ignore[no-any-return]


def _job(row: asyncpg.Record) -> Job:
    return Job(
        request_id=row["id"],
        attempt_no=row["attempts"],
        expert_id=row["expert_id"],
        expert_alias=row["expert_alias"],
        expert_phone=row["expert_phone"],
        expert_email=row["expert_email"],
        expert_language=row["expert_language"],
        rate=row["rate_per_minute"],
        category=row["category"],
        acceptance_ivr=row["acceptance_ivr"],
        client_id=row["client_id"],
        client_alias=row["client_alias"],
        client_phone=row["client_phone"],
        client_language=row["client_language"],
        holding_channel=row["holding_channel"],
    )


# Waiting requests whose expert is not engaged by another request or a line test and takes
# phone calls.
# Opening hours do not gate this: clients who joined before closing time are still served.
_FREE = """
    FROM requests w JOIN experts e ON e.id = w.expert_id
    WHERE w.state = 'waiting' AND e.channel_phone
      AND NOT EXISTS (SELECT 1 FROM requests a
                      WHERE a.expert_id = w.expert_id AND a.state = ANY($1::text[]))
      AND NOT EXISTS (SELECT 1 FROM offers o  -- rung for a category request (0015)
                      WHERE o.expert_id = w.expert_id AND o.state = 'ringing')
      AND NOT EXISTS (SELECT 1 FROM line_tests t  -- a line test rings the expert (0014)
                      WHERE t.expert_id = w.expert_id AND t.result IS NULL)
"""
# A request is due at its own next attempt, but not while its expert is marked unreachable
# after a missed call (a solicit clears that mark), nor while the expert is paused.
_DUE_AT = (
    "greatest(w.next_attempt_at, coalesce(e.unreachable_until, w.next_attempt_at),"
    " coalesce(e.paused_until, w.next_attempt_at))"
)

# A caller holding on the line is connected by the engine that holds their channel.
_HELD_HERE = "(w.holding_channel IS NULL OR w.holding_engine IS NOT DISTINCT FROM $2)"

_NEXT_DUE_SQL = f"SELECT min({_DUE_AT}) {_FREE} AND {_HELD_HERE}"

_CLAIM_SQL = f"""
WITH picked AS (
    SELECT w.id {_FREE} AND {_HELD_HERE} AND {_DUE_AT} <= now()
    ORDER BY w.priority DESC, w.list_rank, w.next_attempt_at, w.id
    LIMIT 1
    FOR UPDATE OF w SKIP LOCKED
)
UPDATE requests r SET state = 'ringing_expert', attempts = r.attempts + 1, updated_at = now(),
                      owner = $2, priority = false
FROM picked, experts e, clients c
WHERE r.id = picked.id AND e.id = r.expert_id AND c.id = r.client_id
RETURNING r.id, r.attempts, r.expert_id, e.alias AS expert_alias, e.phone AS expert_phone,
          e.email AS expert_email, e.language AS expert_language, e.rate_per_minute, e.category,
          e.acceptance_ivr, r.client_id, c.alias AS client_alias, c.phone AS client_phone,
          c.language AS client_language, r.holding_channel
"""
