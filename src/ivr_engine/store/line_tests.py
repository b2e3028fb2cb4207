"""Line self-tests: the engine calls the expert's registered number, plays a test message and
asks for a key. One row of ``line_tests`` per test (migration 0014), written before the call.

A test and a consultation call never ring the expert at once, even with several engines:
``begin`` locks the expert's row and refuses while a request of the expert is active, and a
trigger refuses a request becoming active while a test runs (both lock the same row first).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import asyncpg

from ivr_engine.errors import LineTestRefused, LineTestRequired, NotFound
from ivr_engine.store.engines import EXPIRED
from ivr_engine.store.waiting import ACTIVE


class Result(StrEnum):
    PASSED = "passed"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    NO_KEY = "no_key"  # answered, but no key was pressed (or hung up before one)
    FAILED = "failed"  # Asterisk could not place the call at all
    INTERRUPTED = "interrupted"  # the engine stopped or died during the test


SOURCES = ("phone_menu", "panel", "inbound")


@dataclass(frozen=True)
class Started:
    """A test just recorded, with what its call needs."""

    id: int
    expert_id: int
    channel_id: str
    phone: str
    language: str


@dataclass(frozen=True)
class LineTest:
    id: int
    source: str
    requested_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    result: Result | None  # None: still running

    @property
    def running(self) -> bool:
        return self.result is None


async def begin(
    pool: asyncpg.Pool, expert_id: int, *, source: str, owner: uuid.UUID | None
) -> Started:
    """Record a test about to ring the expert; refused (LineTestRefused) while the expert is
    being rung or is in a consultation, or while another test of theirs runs."""
    if source not in SOURCES:
        raise ValueError(f"unknown line test source {source!r}")
    async with pool.acquire() as conn, conn.transaction():
        expert = await conn.fetchrow(
            "SELECT phone, language FROM experts WHERE id = $1 FOR NO KEY UPDATE", expert_id
        )
        if expert is None:
            raise NotFound(f"expert {expert_id} does not exist")
        # A statement of its own, after the lock: it sees a claim committed meanwhile.
        if await conn.fetchval(
            "SELECT 1 FROM requests WHERE expert_id = $1 AND state = ANY($2::text[])",
            expert_id,
            ACTIVE,
        ):
            raise LineTestRefused(expert_id, "in_call")
        if await conn.fetchval(
            "SELECT 1 FROM line_tests WHERE expert_id = $1 AND result IS NULL", expert_id
        ):
            raise LineTestRefused(expert_id, "running")
        row = await conn.fetchrow(
            "WITH n AS (SELECT nextval('line_tests_id_seq') AS id)"
            " INSERT INTO line_tests (id, expert_id, source, owner, channel_id)"
            " SELECT n.id, $1, $2, $3, 'ivr-lt-' || n.id::text FROM n"
            " RETURNING id, channel_id",
            expert_id,
            source,
            owner,
        )
    return Started(
        id=row["id"],
        expert_id=expert_id,
        channel_id=row["channel_id"],
        phone=expert["phone"],
        language=expert["language"],
    )


async def dialing(pool: asyncpg.Pool, test_id: int, dial_string: str) -> None:
    await pool.execute("UPDATE line_tests SET dial_string = $2 WHERE id = $1", test_id, dial_string)


async def answered(pool: asyncpg.Pool, test_id: int, at: datetime) -> None:
    await pool.execute(
        "UPDATE line_tests SET answered_at = $2 WHERE id = $1 AND result IS NULL", test_id, at
    )


async def finish(
    pool: asyncpg.Pool,
    test_id: int,
    result: Result,
    *,
    ended_at: datetime | None = None,
    cause: int | None = None,
    key: str | None = None,
) -> bool:
    """Record the result once; False if the test had already ended (e.g. recovered)."""
    done = await pool.fetchval(
        "UPDATE line_tests SET result = $2, ended_at = coalesce($3, clock_timestamp()),"
        " hangup_cause = $4, key = $5 WHERE id = $1 AND result IS NULL RETURNING id",
        test_id,
        result.value,
        ended_at,
        cause,
        key,
    )
    return done is not None


async def latest(pool: asyncpg.Pool | asyncpg.Connection, expert_id: int) -> LineTest | None:
    row = await pool.fetchrow(
        "SELECT id, source, requested_at, answered_at, ended_at, result FROM line_tests"
        " WHERE expert_id = $1 ORDER BY id DESC LIMIT 1",
        expert_id,
    )
    if row is None:
        return None
    return LineTest(
        id=row["id"],
        source=row["source"],
        requested_at=row["requested_at"],
        answered_at=row["answered_at"],
        ended_at=row["ended_at"],
        result=Result(row["result"]) if row["result"] else None,
    )


async def last_passed(pool: asyncpg.Pool | asyncpg.Connection, expert_id: int) -> datetime | None:
    return await pool.fetchval(  # type: ignore[no-any-return]
        "SELECT max(ended_at) FROM line_tests WHERE expert_id = $1 AND result = 'passed'",
        expert_id,
    )


async def require_recent_pass(
    pool: asyncpg.Pool | asyncpg.Connection, expert_id: int, hours: float, now: datetime
) -> None:
    """LineTestRequired unless ``hours`` is 0 (no requirement) or the expert passed a test
    within the last ``hours``."""
    if hours <= 0:
        return
    passed = await last_passed(pool, expert_id)
    if passed is None or passed < now - timedelta(hours=hours):
        raise LineTestRequired(expert_id, hours, passed)


@dataclass(frozen=True)
class Orphan:
    id: int
    channel_id: str


async def abandoned(
    pool: asyncpg.Pool, me: uuid.UUID, lease: float, *, stale_ok: bool
) -> list[Orphan]:
    """Running tests of no live engine (never ``me``'s); as for requests, a stale heartbeat
    counts only with ``stale_ok``."""
    rows = await pool.fetch(
        "SELECT t.id, t.channel_id FROM line_tests t LEFT JOIN engines g ON g.id = t.owner"
        f" WHERE t.result IS NULL AND (t.owner IS NULL OR (t.owner <> $3 AND {EXPIRED}"
        " AND ($1 OR g.stopped_at IS NOT NULL))) ORDER BY t.id",
        stale_ok,
        lease,
        me,
    )
    return [Orphan(id=r["id"], channel_id=r["channel_id"]) for r in rows]
