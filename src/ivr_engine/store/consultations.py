"""Consultations: the tariff frozen when the bridge starts, the bill written when it ends.

The bill and the earnings email row are written in the transaction that ends the
consultation, so there is exactly one of each per consultation.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from ivr_engine.domain.billing import settle
from ivr_engine.domain.job import Job
from ivr_engine.domain.money import Bill, LineType, Tariff, TransferRule
from ivr_engine.domain.requests import RequestState
from ivr_engine.store import outbox
from ivr_engine.store.waiting import move_in

S = RequestState


async def begin(
    pool: asyncpg.Pool,
    job: Job,
    tariff: Tariff,
    *,
    bridge_id: str,
    expert_channel: str,
    client_channel: str,
    start: datetime,
) -> int:
    """The bridge is up: freeze the tariff and mark the request connected, together."""
    async with pool.acquire() as conn, conn.transaction():
        consultation_id = await _insert(
            conn,
            job,
            tariff,
            bridge_id=bridge_id,
            expert_channel=expert_channel,
            client_channel=client_channel,
            start=start,
        )
        await move_in(conn, job.request_id, S.RINGING_CLIENT, S.CONNECTED, "bridged")
    return consultation_id


async def finish(
    pool: asyncpg.Pool, request_id: int, *, end: datetime | None, ended_by: str
) -> Bill | None:
    """Bill it until ``end`` (None: now), queue the earnings email, complete the request:
    one transaction. None if it was already closed."""
    async with pool.acquire() as conn, conn.transaction():
        closed = await _close(conn, request_id, end=end or datetime.now(UTC), ended_by=ended_by)
        await move_in(conn, request_id, S.CONNECTED, S.COMPLETED, f"ended by {ended_by}")
    return None if closed is None else closed[1]


async def _insert(
    conn: asyncpg.Connection,
    job: Job,
    tariff: Tariff,
    *,
    bridge_id: str,
    expert_channel: str,
    client_channel: str,
    start: datetime,
) -> int:
    return int(
        await conn.fetchval(
            "INSERT INTO consultations (request_id, expert_id, client_id, bridge_id,"
            " expert_channel_id, client_channel_id, rate_per_minute, bridge_start,"
            " category, line_type, transfer_per_minute, transfer_factor, transfer_rule,"
            " commission_percent, granularity_seconds, minimum_seconds)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16) RETURNING id",
            job.request_id,
            job.expert_id,
            job.client_id,
            bridge_id,
            expert_channel,
            client_channel,
            tariff.rate,
            start,
            tariff.category,
            tariff.line_type.value,
            tariff.transfer_per_minute,
            tariff.rule.factor,
            tariff.rule.description,
            tariff.commission_percent,
            tariff.granularity_seconds,
            tariff.minimum_seconds,
        )
    )


def tariff_of(row: asyncpg.Record) -> Tariff:
    """The tariff exactly as it was frozen into the consultation row."""
    return Tariff(
        rate=row["rate_per_minute"],
        category=row["category"],
        line_type=LineType(row["line_type"]),
        transfer_per_minute=row["transfer_per_minute"],
        rule=TransferRule(factor=row["transfer_factor"], description=row["transfer_rule"]),
        commission_percent=row["commission_percent"],
        granularity_seconds=row["granularity_seconds"],
        minimum_seconds=row["minimum_seconds"],
    )


async def _close(
    conn: asyncpg.Connection, request_id: int, *, end: datetime, ended_by: str
) -> tuple[int, Bill] | None:
    """Write the end, the bill and the earnings email; None if it was already closed."""
    row = await conn.fetchrow(
        "SELECT c.*, e.email, e.language, e.alias AS expert_alias, k.alias AS client_alias"
        " FROM consultations c JOIN experts e ON e.id = c.expert_id"
        " JOIN clients k ON k.id = c.client_id"
        " WHERE c.request_id = $1 AND c.bridge_end IS NULL FOR UPDATE OF c",
        request_id,
    )
    if row is None:
        return None
    bill = settle(tariff_of(row), row["bridge_start"], end)
    await conn.execute(
        "UPDATE consultations SET bridge_end = $2, billed_seconds = $3, ended_by = $4,"
        " charged_seconds = $5, client_price = $6, transfer_cost = $7, commission = $8,"
        " earnings = $9, bill_note = $10 WHERE id = $1",
        row["id"],
        end,
        bill.billed_seconds,
        ended_by,
        bill.charged_seconds,
        bill.client_price,
        bill.transfer_cost,
        bill.commission,
        bill.earnings,
        bill.note,
    )
    payload: dict[str, Any] = {
        "consultation_id": row["id"],
        "expert_alias": row["expert_alias"],
        "client_alias": row["client_alias"],
        "start": row["bridge_start"].isoformat(),
        "end": end.isoformat(),
        "rate": str(row["rate_per_minute"]),
        "line_type": row["line_type"],
        "transfer_rule": row["transfer_rule"],
        **bill.as_json(),
    }
    await outbox.queue(
        conn,
        "consultation_earnings",
        to=row["email"],
        language=row["language"],
        payload=payload,
        request_id=request_id,
        consultation_id=row["id"],
    )
    return row["id"], bill


_DETAIL_SQL = """
SELECT c.*, e.alias AS expert_alias, k.alias AS client_alias
FROM consultations c JOIN experts e ON e.id = c.expert_id JOIN clients k ON k.id = c.client_id
"""


def detail(row: asyncpg.Record) -> dict[str, Any]:
    """The billing detail of one consultation, as the API and the email show it."""

    def money(value: Decimal | None) -> str | None:
        return None if value is None else str(value)

    return {
        "id": row["id"],
        "request_id": row["request_id"],
        "expert_id": row["expert_id"],
        "expert_alias": row["expert_alias"],
        "client_id": row["client_id"],
        "client_alias": row["client_alias"],
        "start": row["bridge_start"].isoformat(),
        "end": row["bridge_end"].isoformat() if row["bridge_end"] else None,
        "ended_by": row["ended_by"],
        "billed_seconds": row["billed_seconds"],
        "charged_seconds": row["charged_seconds"],
        "rate_per_minute": money(row["rate_per_minute"]),
        "category": row["category"],
        "line_type": row["line_type"],
        "transfer_per_minute": money(row["transfer_per_minute"]),
        "transfer_rule": row["transfer_rule"],
        "commission_percent": money(row["commission_percent"]),
        "client_price": money(row["client_price"]),
        "transfer_cost": money(row["transfer_cost"]),
        "commission": money(row["commission"]),
        "earnings": money(row["earnings"]),
        "note": row["bill_note"],
    }


async def get(pool: asyncpg.Pool, consultation_id: int) -> dict[str, Any] | None:
    row = await pool.fetchrow(_DETAIL_SQL + " WHERE c.id = $1", consultation_id)
    return None if row is None else detail(row)


async def page(
    pool: asyncpg.Pool, expert_id: int, *, limit: int, before_id: int | None
) -> list[dict[str, Any]]:
    """Newest first; pass the last id of a page as ``before_id`` to get the next one."""
    rows = await pool.fetch(
        _DETAIL_SQL + " WHERE c.expert_id = $1 AND ($2::bigint IS NULL OR c.id < $2)"
        " ORDER BY c.id DESC LIMIT $3",
        expert_id,
        before_id,
        limit,
    )
    return [detail(r) for r in rows]
