"""When the dispatcher must look again: the earliest of the due time of the claim queue
(store/claims.py), of the category requests (store/offers.py) and of the oldest waiting
request's expiry (store/expiry.py), in one statement: one round trip per pass instead of
three. Each part is the statement its own module runs alone. No parameter but the engine
and the time to live: PostgreSQL keeps one generic plan for it."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from ivr_engine.store import claims, expiry, offers

# least() skips NULLs: NULL only when none of the three has anything waiting.
NEXT_WAKE_SQL = f"""
SELECT least(
    ({claims.NEXT_DUE_SQL}),
    ({offers.NEXT_DUE_SQL}),
    ({expiry.next_expiry_sql("$2")})
)
"""


async def next_wake(
    pool: asyncpg.Pool, owner: uuid.UUID | None, ttl_hours: float
) -> datetime | None:
    """The earliest time something waiting becomes due or expires (None: nothing waits)."""
    return await pool.fetchval(NEXT_WAKE_SQL, *next_wake_args(owner, ttl_hours))  # type: ignore[no-any-return]


def next_wake_args(owner: uuid.UUID | None, ttl_hours: float) -> tuple[object, ...]:
    """The arguments of NEXT_WAKE_SQL (also for EXPLAIN in the bench)."""
    return (owner, expiry.ttl_seconds(ttl_hours))
