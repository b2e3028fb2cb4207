"""Consultations: the tariff frozen when the bridge starts, the bill written when it ends.

The bill and the earnings email row are written by the statement that ends the
consultation, so there is exactly one of each per consultation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from ivr_engine.domain.billing import settle
from ivr_engine.domain.job import Job
from ivr_engine.domain.money import Bill, LineType, Tariff, TransferRule
from ivr_engine.domain.requests import RequestState, check_transition
from ivr_engine.errors import Conflict
from ivr_engine.store import attempts
from ivr_engine.store.attempts import AttemptEnd
from ivr_engine.store.waiting import MOVE_CTES

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
    """The bridge is up: freeze the tariff and mark the request connected, together (one
    statement: the consultation row exists only if the request moved; a Conflict if it was
    no longer ringing the client)."""
    check_transition(S.RINGING_CLIENT, S.CONNECTED)
    consultation_id = await pool.fetchval(
        _BEGIN_SQL,
        job.request_id,
        S.RINGING_CLIENT.value,
        S.CONNECTED.value,
        False,
        "bridged",
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
    if consultation_id is None:
        raise Conflict(f"request {job.request_id} is no longer {S.RINGING_CLIENT}")
    return int(consultation_id)


# $1-$5 the move (waiting.MOVE_CTES), $6.. the consultation with its frozen tariff.
_BEGIN_SQL = f"""
WITH {MOVE_CTES},
started AS (
    INSERT INTO consultations (request_id, expert_id, client_id, bridge_id,
        expert_channel_id, client_channel_id, rate_per_minute, bridge_start, category,
        line_type, transfer_per_minute, transfer_factor, transfer_rule, commission_percent,
        granularity_seconds, minimum_seconds, seen_at)
    SELECT moved.id, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $12
    FROM moved
    RETURNING id
)
SELECT id FROM started
"""


async def finish(
    pool: asyncpg.Pool,
    request_id: int,
    *,
    end: datetime | None,
    ended_by: str,
    attempts_ended: Sequence[AttemptEnd] = (),
) -> Bill | None:
    """Bill it until ``end`` (None: now), queue the earnings email, complete the request and
    end ``attempts_ended`` (the legs' rows): one statement, after one read of the frozen
    tariff. None if it was already closed; a Conflict (nothing billed, nothing queued) if
    the request was no longer connected. The attempts are ended either way."""
    end = end or datetime.now(UTC)
    reason = f"ended by {ended_by}"
    check_transition(S.CONNECTED, S.COMPLETED)
    move = (request_id, S.CONNECTED.value, S.COMPLETED.value, True, reason)
    legs = attempts.end_columns(attempts_ended)
    # Not locked: the row's tariff and start are frozen, and only this statement's move
    # (connected -> completed, compare-and-set on the request) closes it.
    row = await pool.fetchrow(
        "SELECT c.*, e.email, e.language, e.alias AS expert_alias, k.alias AS client_alias"
        " FROM consultations c JOIN experts e ON e.id = c.expert_id"
        " JOIN clients k ON k.id = c.client_id"
        " WHERE c.request_id = $1 AND c.bridge_end IS NULL",
        request_id,
    )
    if row is None:
        done = await pool.fetchrow(_MOVE_ONLY_SQL, *move, *legs)
        if not done["moved"]:
            raise Conflict(f"request {request_id} is no longer {S.CONNECTED}")
        return None
    bill = settle(tariff_of(row), row["bridge_start"], end)
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
    done = await pool.fetchrow(
        _FINISH_SQL,
        *move,
        *legs,
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
        row["email"],
        row["language"],
        json.dumps(payload),
    )
    if not done["moved"]:
        raise Conflict(f"request {request_id} is no longer {S.CONNECTED}")
    return bill if done["closed"] else None


# $1-$5 the move, $6-$12 the attempts' ends: written even when the move finds the request
# moved already (a Conflict for the caller), as separate statements used to.
_MOVE_ONLY_SQL = f"""
WITH {MOVE_CTES},
legs AS ({attempts.ended_sql(6)})
SELECT EXISTS (SELECT 1 FROM moved) AS moved
"""
# $13-$25 the bill and the earnings email, written only with the move.
_FINISH_SQL = f"""
WITH {MOVE_CTES},
legs AS ({attempts.ended_sql(6)}),
closed AS (
    UPDATE consultations c SET bridge_end = $14, billed_seconds = $15, ended_by = $16,
        charged_seconds = $17, client_price = $18, transfer_cost = $19, commission = $20,
        earnings = $21, bill_note = $22
    FROM moved WHERE c.id = $13 AND c.bridge_end IS NULL
    RETURNING c.id
),
mailed AS (
    INSERT INTO outbox_emails
        (kind, request_id, consultation_id, to_address, language, payload)
    SELECT 'consultation_earnings', $1, closed.id, $23, $24, $25::jsonb FROM closed
)
SELECT EXISTS (SELECT 1 FROM moved) AS moved, EXISTS (SELECT 1 FROM closed) AS closed
"""


async def seen_at(pool: asyncpg.Pool, request_id: int) -> datetime | None:
    """The last time an engine saw this consultation's bridge up (its lease heartbeat)."""
    return await pool.fetchval(  # type: ignore[no-any-return]
        "SELECT seen_at FROM consultations WHERE request_id = $1", request_id
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
