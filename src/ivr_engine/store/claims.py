"""Claims: which waiting request is rung next, and by which engine.

A claim moves one due request whose expert is free to ``ringing_expert`` in one
statement. It costs the same whatever the length of the lists: it reads the few free
experts due first from one index (experts.queue_due, kept by a trigger: migrations 0012
and 0017) and the head of each one's list from another (requests_waiting_order, 0017: one
entry each), locking the experts it looks at (SKIP LOCKED: a second engine takes other
experts). The partial unique index on active requests still makes a concurrent claim for
the same expert fail instead of ringing them twice.

Of those experts' heads the first by ``WAITING_ORDER`` is rung.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from ivr_engine.domain.job import Job


async def claim_next(pool: asyncpg.Pool, owner: uuid.UUID | None = None) -> Job | None:
    """Take the next due request whose expert is free, moving it to ringing_expert and
    recording ``owner``, the engine that will run its call. Within an expert's list, a
    request whose call an engine interrupted comes first, then by rank (``new_first``: new
    clients), then by due time. A caller holding on the line is taken only by the engine
    holding their channel. One statement, one round trip."""
    for _ in range(5):
        try:
            row = await pool.fetchrow(CLAIM_SQL, *claim_args(owner))
        except asyncpg.UniqueViolationError:
            continue  # another engine claimed for this expert first
        return None if row is None else _job(row)
    return None


async def next_due(pool: asyncpg.Pool, owner: uuid.UUID | None = None) -> datetime | None:
    """When the earliest request whose expert is free becomes due (None: nothing waits)."""
    return await pool.fetchval(NEXT_DUE_SQL, *next_due_args(owner))  # type: ignore[no-any-return]


def claim_args(owner: uuid.UUID | None) -> tuple[object, ...]:
    """The arguments of CLAIM_SQL (also for EXPLAIN in the bench)."""
    return (owner,)


def next_due_args(owner: uuid.UUID | None) -> tuple[object, ...]:
    return (owner,)


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


# The order of one expert's waiting list: a request whose call the engine interrupted
# first, then by rank (new_first), then the one due first. It is the order of the index
# requests_waiting_order (migration 0017): a change here goes there too.
WAITING_ORDER = "w.priority DESC, w.list_rank, w.next_attempt_at, w.id"

# How many free experts, due first, one claim considers (each locked, SKIP LOCKED: two
# engines claiming at once take different experts): the best head of their lists by
# WAITING_ORDER is rung first (an interrupted call before a new one at another expert).
CANDIDATES = 8

# A caller holding on the line is connected by the engine that holds their channel ($1: the
# engine asking).
_HELD_HERE = "(w.holding_channel IS NULL OR w.holding_engine IS NOT DISTINCT FROM $1)"

# Free experts (no active request, no line test ringing them, phone line on) whose list
# has a due request: a request is due at its own next attempt, but not while its expert is
# paused or marked unreachable after a missed call (experts.queue_due, migration 0012, says
# all of that). Opening hours do not gate this: clients who joined before closing time are
# still served.
_FREE_EXPERTS = """
    e.channel_phone AND NOT e.engaged AND e.queue_due IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM line_tests t  -- a line test rings the expert (0014)
                      WHERE t.expert_id = e.id AND t.result IS NULL)
      AND NOT EXISTS (SELECT 1 FROM offers o  -- rung for a category request (0015)
                      WHERE o.expert_id = e.id AND o.state = 'ringing')
"""

# ORDER BY ... LIMIT 1 rather than min(): the planner walks experts_queue in order and stops
# at the first free expert (min() with the anti-join scanned every expert).
NEXT_DUE_SQL = f"""
SELECT e.queue_due FROM experts e
WHERE {_FREE_EXPERTS}
  AND EXISTS (SELECT 1 FROM requests w WHERE w.expert_id = e.id AND w.state = 'waiting'
              AND {_HELD_HERE})
ORDER BY e.queue_due LIMIT 1
"""

# The CANDIDATES free experts due first, each with the head of their list (one entry of
# requests_waiting_order: the best due request this engine may take), the experts locked
# (SKIP LOCKED: two engines claiming at once take different experts); the best of those
# heads by WAITING_ORDER; then the move, its RETURNING and the event row.
# No parameter but the engine: PostgreSQL then keeps one generic plan for it after five
# calls (LIMIT $n made it plan every claim afresh, about 1 ms, more than the claim itself).
CLAIM_SQL = f"""
WITH candidates AS (
    SELECT e.id, w.id AS request_id, w.priority, w.list_rank, w.next_attempt_at
    FROM experts e CROSS JOIN LATERAL (
        SELECT w.id, w.priority, w.list_rank, w.next_attempt_at FROM requests w
        WHERE w.expert_id = e.id AND w.state = 'waiting' AND w.next_attempt_at <= now()
          AND {_HELD_HERE}
        ORDER BY {WAITING_ORDER}
        LIMIT 1
    ) w
    WHERE {_FREE_EXPERTS} AND e.queue_due <= now()
    ORDER BY e.queue_due, e.id
    LIMIT {CANDIDATES}
    FOR NO KEY UPDATE OF e SKIP LOCKED
), picked AS (
    SELECT w.request_id AS id FROM candidates w
    ORDER BY {WAITING_ORDER.replace("w.id", "w.request_id")}
    LIMIT 1
), claimed AS (
    UPDATE requests r SET state = 'ringing_expert', attempts = r.attempts + 1,
                          updated_at = now(), owner = $1, priority = false
    FROM picked, experts e, clients c
    WHERE r.id = picked.id AND r.state = 'waiting' AND e.id = r.expert_id AND c.id = r.client_id
    RETURNING r.id, r.attempts, r.expert_id, e.alias AS expert_alias, e.phone AS expert_phone,
              e.email AS expert_email, e.language AS expert_language, e.rate_per_minute,
              e.category, e.acceptance_ivr, r.client_id, c.alias AS client_alias,
              c.phone AS client_phone, c.language AS client_language, r.holding_channel
), logged AS (
    INSERT INTO request_events (request_id, from_state, to_state, detail)
    SELECT id, 'waiting', 'ringing_expert', 'attempt ' || attempts FROM claimed
)
SELECT * FROM claimed
"""
