"""The wake-ups come from PostgreSQL: a change made by any connection (another engine, a
sysadmin's psql) reaches the listener's callbacks, and a lost LISTEN connection is
re-opened with a "look again" (None) for everyone."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg

from ivr_engine.store import claims, expiry, people, waiting
from ivr_engine.store.notify import OUTBOX, PAGES, REQUESTS, Listener


async def _next(queue: asyncio.Queue[str | None], timeout: float = 5.0) -> str | None:
    return await asyncio.wait_for(queue.get(), timeout)


def _drain(queue: asyncio.Queue[str | None]) -> None:
    while not queue.empty():
        queue.get_nowait()


async def test_changes_by_anyone_wake_the_subscribers(dsn: str, pool: asyncpg.Pool) -> None:
    requests: asyncio.Queue[str | None] = asyncio.Queue()
    outbox: asyncio.Queue[str | None] = asyncio.Queue()
    pages: asyncio.Queue[str | None] = asyncio.Queue()
    listener = Listener(dsn)
    listener.on(REQUESTS, requests.put_nowait)
    listener.on(OUTBOX, outbox.put_nowait)
    listener.on(PAGES, pages.put_nowait)
    listener.start()
    try:
        assert await _next(requests) is None  # connected: look once
        assert await _next(outbox) is None
        assert await _next(pages) is None
        expert = await people.create_expert(pool, alias="A", phone="+39060001", rate=Decimal(1))
        client = await people.client_by_phone(pool, "+3933301")
        # Written with plain SQL, as another engine would: no code path of ours pokes.
        await pool.execute(
            "INSERT INTO requests (expert_id, client_id) VALUES ($1, $2)", expert, client
        )
        assert await _next(requests) == str(expert)
        job = await claims.claim_next(pool)
        assert job is not None
        # The claim moved the state into an active one: the pages hear it, the dispatchers
        # do not (nothing became claimable; migration 0018).
        assert await _next(pages) == str(expert)
        await asyncio.sleep(0.2)  # a notification of the same transaction would be here
        assert requests.empty()
        await waiting.missed(pool, job.request_id, retry_delay=60, max_attempts=3, reason="busy")
        assert await _next(requests) == str(expert)
        _drain(requests)  # PostgreSQL folds a transaction's identical notifications
        assert await _next(outbox) == ""  # the missed-call email was queued
        _drain(requests)
        # A solicit moves no state, only the next attempt: the dispatcher must hear it too.
        await waiting.solicit(pool, job.request_id)
        assert await _next(requests) == str(expert)
        # A statement that queues no email (expiry on every dispatcher pass) wakes no sender.
        assert await expiry.expire(pool, 1) == []
        await pool.execute("UPDATE experts SET paused_until = now() WHERE id = $1", expert)
        assert await _next(requests) == str(expert)  # a later change has arrived ...
        assert outbox.empty()  # ... and nothing before it for the sender
    finally:
        await listener.close()


async def test_a_lost_connection_is_reopened_and_everyone_looks_again(
    dsn: str, pool: asyncpg.Pool
) -> None:
    seen: asyncio.Queue[str | None] = asyncio.Queue()
    listener = Listener(dsn)
    listener.on(REQUESTS, seen.put_nowait)
    listener.start()
    try:
        assert await _next(seen) is None
        killed = await pool.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
        )
        assert killed == 1
        assert await _next(seen) is None  # reconnected: look again
        assert listener.listening.is_set()
        expert = await people.create_expert(pool, alias="A", phone="+39060001", rate=Decimal(1))
        await pool.execute("UPDATE experts SET paused_until = now() WHERE id = $1", expert)
        assert await _next(seen) == str(expert)
    finally:
        await listener.close()
    assert not listener.listening.is_set()
