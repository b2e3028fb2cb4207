"""The figures /metrics exports from PostgreSQL: what the database says, whichever engine
made it. Rows are never deleted, so the totals only grow (Prometheus counters).

One snapshot is a handful of aggregate queries in one read-only transaction; with several
engines on one database each exports the same figures (aggregate them with ``max``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import asyncpg


@dataclass(frozen=True)
class Figures:
    requests_by_state: dict[str, int] = field(default_factory=dict)
    consultations_in_progress: int = 0
    # (leg, outcome, Q.850 cause or "") -> finished dials
    dial_outcomes: dict[tuple[str, str, str], int] = field(default_factory=dict)
    bridged_seconds: int = 0
    billed_euros: Decimal = Decimal(0)
    outbox_pending: int = 0
    outbox_retrying: int = 0
    outbox_failed: int = 0


async def snapshot(pool: asyncpg.Pool, *, timeout: float = 5.0) -> Figures:
    async with pool.acquire(timeout=timeout) as conn, conn.transaction(readonly=True):
        states = await conn.fetch(
            "SELECT state, count(*) AS n FROM requests GROUP BY state", timeout=timeout
        )
        dials = await conn.fetch(
            "SELECT leg, outcome, coalesce(hangup_cause::text, '') AS cause, count(*) AS n"
            " FROM call_attempts WHERE ended_at IS NOT NULL GROUP BY 1, 2, 3",
            timeout=timeout,
        )
        money = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE bridge_end IS NULL) AS open,"
            " coalesce(sum(billed_seconds), 0) AS seconds,"
            " coalesce(sum(client_price), 0) AS euros FROM consultations",
            timeout=timeout,
        )
        mail = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE sent_at IS NULL AND failed_at IS NULL) AS pending,"
            " count(*) FILTER (WHERE sent_at IS NULL AND failed_at IS NULL AND attempts > 0)"
            " AS retrying, count(*) FILTER (WHERE failed_at IS NOT NULL) AS failed"
            " FROM outbox_emails",
            timeout=timeout,
        )
    return Figures(
        requests_by_state={r["state"]: int(r["n"]) for r in states},
        consultations_in_progress=int(money["open"]),
        dial_outcomes={(r["leg"], r["outcome"], r["cause"]): int(r["n"]) for r in dials},
        bridged_seconds=int(money["seconds"]),
        billed_euros=Decimal(money["euros"]),
        outbox_pending=int(mail["pending"]),
        outbox_retrying=int(mail["retrying"]),
        outbox_failed=int(mail["failed"]),
    )
