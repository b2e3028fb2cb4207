"""Writes that must not be lost while PostgreSQL is away (a restart, a failover).

A call in progress is never cut because the database is away: the flow keeps the call up and
retries the write, with the values (timestamps included) it had when it first tried, until
PostgreSQL answers again or the flow is cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import structlog

log = structlog.get_logger(__name__)
T = TypeVar("T")

# What a restart, a failover or a cut connection raises; anything else is a real error.
TRANSIENT: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now
    asyncpg.exceptions.InternalClientError,  # a connection's protocol state after a restart
    OSError,
    TimeoutError,
)


async def durably(write: Callable[[], Awaitable[T]], what: str, *, cap: float = 5.0) -> T:
    """``await write()``, retried with capped backoff for as long as PostgreSQL is away."""
    delay = 0.2
    failures = 0
    while True:
        try:
            result = await write()
        except TRANSIENT as err:
            failures += 1
            if failures == 1 or failures % 10 == 0:
                log.warning("store.retrying", what=what, error=repr(err), failures=failures)
            await asyncio.sleep(delay)
            delay = min(cap, delay * 2)
            continue
        if failures:
            log.info("store.recovered", what=what, failures=failures)
        return result
