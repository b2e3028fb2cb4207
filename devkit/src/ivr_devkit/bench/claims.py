"""The claim step: fill the waiting lists (up to 100,000 waiting requests across 10,000
experts) and time ``claim_next`` and the dispatcher's due-time statement (``next_due`` in
the figures: store/wake.py, the claim queue's next due time, the category requests' and the
next expiry in one statement) at each size, with their query plans.

The lists are made to be hard: of every ten experts two are free, five are on a call (an
active request), one is paused, one has switched the phone line off and one is marked
unreachable after a missed call; one waiting request in ten is not due yet (a retry later).
Each timed claim is put back to ``waiting`` afterwards (untimed), so every claim of a size
faces the same lists.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import asyncpg

from ivr_devkit.bench.traces import percentile
from ivr_engine.store import claims, connect_pool, migrate, wake


@dataclass(frozen=True)
class Size:
    experts: int
    per_expert: int

    @property
    def waiting(self) -> int:
        return self.experts * self.per_expert


FULL = (Size(10, 10), Size(1_000, 10), Size(10_000, 10))
QUICK = (Size(10, 10), Size(10_000, 10))
FILL_TIMEOUT = 300.0  # seconds for one statement of the fill (a busy 2-core machine)
# Untimed rounds first, as a running engine's connections are warm: a connection's first
# calls compile the triggers' functions, and PostgreSQL settles on a statement's generic
# plan after its fifth execution.
WARM_UP = 10
TTL_HOURS = 12.0  # the default IVR_REQUEST_TTL_HOURS (the due-time statement's expiry part)

_EXPERTS = """
INSERT INTO experts (alias, phone, rate_per_minute, channel_phone, paused_until,
                     unreachable_until)
SELECT 'Expert' || g, '+3906' || lpad(g::text, 8, '0'), 1.50, g % 10 <> 1,
       CASE WHEN g % 10 = 2 THEN now() + interval '1 hour' END,
       CASE WHEN g % 10 = 3 THEN now() + interval '5 minutes' END
FROM generate_series(1, $1) g
"""
_CLIENTS = """
INSERT INTO clients (alias, phone)
SELECT 'Client' || g, '+39333' || lpad(g::text, 7, '0') FROM generate_series(1, $1 + 1) g
"""
_WAITING = """
INSERT INTO requests (expert_id, client_id, next_attempt_at)
SELECT e.id, c.id, now() - random() * interval '1 hour'
       + CASE WHEN random() < 0.1 THEN interval '2 hours' ELSE interval '0' END
FROM experts e CROSS JOIN clients c WHERE c.id <= $1
"""
_ENGAGED = """
INSERT INTO requests (expert_id, client_id, state, attempts)
SELECT e.id, $1 + 1, 'connected', 1 FROM experts e WHERE e.id % 10 BETWEEN 4 AND 8
"""
_PUT_BACK = (
    "UPDATE requests SET state = 'waiting', updated_at = now() WHERE id = $1"
    " AND state = 'ringing_expert'"
)


async def fill(pool: asyncpg.Pool, size: Size) -> float:
    """Make the lists of ``size``; the seconds it took."""
    began = time.perf_counter()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(_EXPERTS, size.experts, timeout=FILL_TIMEOUT)
        await conn.execute(_CLIENTS, size.per_expert, timeout=FILL_TIMEOUT)
        await conn.execute(_WAITING, size.per_expert, timeout=FILL_TIMEOUT)
        await conn.execute(_ENGAGED, size.per_expert, timeout=FILL_TIMEOUT)
    await pool.execute("ANALYZE", timeout=FILL_TIMEOUT)
    return time.perf_counter() - began


async def timed(pool: asyncpg.Pool, rounds: int) -> dict[str, float | int | None]:
    """``rounds`` claims and next-due queries (and a ``SELECT 1`` each, the round trip
    alone): p50/p99/max in milliseconds."""
    claim_ms: list[float] = []
    due_ms: list[float] = []
    floor_ms: list[float] = []
    claimed = 0
    for n in range(WARM_UP + rounds):
        if n == WARM_UP:
            claim_ms.clear()
            due_ms.clear()
            floor_ms.clear()
            claimed = 0
        began = time.perf_counter()
        await pool.fetchval("SELECT 1")
        floor_ms.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        await wake.next_wake(pool, None, TTL_HOURS)
        due_ms.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        job = await claims.claim_next(pool)
        claim_ms.append((time.perf_counter() - began) * 1000)
        if job is not None:
            claimed += 1
            await pool.execute(_PUT_BACK, job.request_id)
    return {
        "rounds": rounds,
        "claimed": claimed,
        "claim_p50_ms": percentile(claim_ms, 50),
        "claim_p99_ms": percentile(claim_ms, 99),
        "claim_max_ms": max(claim_ms, default=None),
        "next_due_p50_ms": percentile(due_ms, 50),
        "next_due_p99_ms": percentile(due_ms, 99),
        # The round trip alone (this machine's floor for the two above): SELECT 1 the same way.
        "select1_p50_ms": percentile(floor_ms, 50),
        "select1_p99_ms": percentile(floor_ms, 99),
    }


async def server_times(pool: asyncpg.Pool, rounds: int) -> dict[str, float | None]:
    """The claim's and next-due's time inside PostgreSQL, planning and execution (EXPLAIN
    ANALYZE EXECUTE of prepared statements, as the engine's are; triggers included; each
    claim rolled back): the query's own cost, without the round trip and this process's
    scheduling on a busy machine."""
    claim_ms: list[float] = []
    due_ms: list[float] = []
    async with pool.acquire() as conn:
        await _prepare(conn)
        for n in range(WARM_UP + rounds):
            claim = _server_ms(await _explain(conn, _EXPLAIN_CLAIM, "JSON, TIMING OFF"))
            due = _server_ms(await _explain(conn, _EXPLAIN_DUE, "JSON, TIMING OFF"))
            if n >= WARM_UP:
                claim_ms.append(claim)
                due_ms.append(due)
        await conn.execute("DEALLOCATE ALL")
    return {
        "claim_server_p50_ms": percentile(claim_ms, 50),
        "claim_server_p99_ms": percentile(claim_ms, 99),
        "next_due_server_p99_ms": percentile(due_ms, 99),
    }


_EXPLAIN_CLAIM = "EXECUTE bench_claim(NULL)"
_EXPLAIN_DUE = f"EXECUTE bench_next_due(NULL, {TTL_HOURS * 3600})"


async def _prepare(conn: asyncpg.Connection) -> None:
    await conn.execute("PREPARE bench_claim(uuid) AS " + claims.CLAIM_SQL)
    await conn.execute("PREPARE bench_next_due(uuid, float8) AS " + wake.NEXT_WAKE_SQL)


async def _explain(conn: asyncpg.Connection, statement: str, options: str) -> object:
    """EXPLAIN (ANALYZE, FORMAT ...) of ``statement``, rolled back."""
    tx = conn.transaction()
    await tx.start()
    try:
        rows = await conn.fetch(f"EXPLAIN (ANALYZE, FORMAT {options}) {statement}")
    finally:
        await tx.rollback()
    if len(rows) == 1 and not options.startswith("TEXT"):
        return rows[0][0]
    return "\n".join(r[0] for r in rows)


def _server_ms(plan: object) -> float:
    data = json.loads(plan) if isinstance(plan, str) else plan
    assert isinstance(data, list)
    # Execution Time includes the triggers' time.
    return float(data[0]["Planning Time"]) + float(data[0]["Execution Time"])


async def plans(pool: asyncpg.Pool) -> dict[str, str]:
    """EXPLAIN ANALYZE of both queries as the engine runs them (prepared, generic plan after
    the warm-up; the claim's update rolled back)."""
    found: dict[str, str] = {}
    async with pool.acquire() as conn:
        await _prepare(conn)
        options = "TEXT, COSTS OFF, TIMING OFF, SUMMARY ON"
        for _ in range(WARM_UP):
            await _explain(conn, _EXPLAIN_CLAIM, options)
            await _explain(conn, _EXPLAIN_DUE, options)
        found["claim_next"] = str(await _explain(conn, _EXPLAIN_CLAIM, options))
        found["next_due"] = str(await _explain(conn, _EXPLAIN_DUE, options))
        await conn.execute("DEALLOCATE ALL")
    return found


async def run(admin_dsn: str, sizes: tuple[Size, ...], rounds: int) -> list[dict[str, object]]:
    """Each size in a database of its own on the throwaway cluster; dropped afterwards."""
    results: list[dict[str, object]] = []
    base = admin_dsn.rpartition("/")[0]
    for size in sizes:
        name = f"ivr_claims_{size.waiting}"
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        pool = await connect_pool(f"{base}/{name}")
        try:
            await migrate(pool)
            seconds = await fill(pool, size)
            figures = await timed(pool, rounds)
            figures.update(await server_times(pool, rounds))
            result: dict[str, object] = {
                "experts": size.experts,
                "waiting": size.waiting,
                "fill_seconds": round(seconds, 1),
                **figures,
            }
            if size is sizes[-1]:
                result["plans"] = await plans(pool)
            results.append(result)
        finally:
            await pool.close()
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE "{name}"')
        finally:
            await admin.close()
    return results
