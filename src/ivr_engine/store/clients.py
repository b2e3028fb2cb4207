"""One client as an expert sees them: their consultations together, the expert's private
notes, and the messages the expert sent them.

Every query is scoped by the expert: a client exists for an expert only once they have
asked that expert for a consultation (a row in ``requests``). The client's phone number
and email address never leave this module: the marketplace hides them from experts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from ivr_engine.store import consultations, outbox

MAX_TEXT = 2000  # characters of a note or a message

_KNOWN = "EXISTS (SELECT 1 FROM requests r WHERE r.expert_id = $1 AND r.client_id = $2)"


@dataclass(frozen=True)
class ClientSummary:
    client_id: int
    alias: str
    has_email: bool
    consultations: int
    billed_seconds: int
    last_start: datetime | None
    client_price_total: Decimal
    earnings_total: Decimal


@dataclass(frozen=True)
class Entry:
    """A note, or a message with where its email stands ('queued', 'sent', 'failed')."""

    id: int
    body: str
    created_at: datetime
    delivery: str = ""


async def summary(pool: asyncpg.Pool, expert_id: int, client_id: int) -> ClientSummary | None:
    """None unless this client has asked this expert for a consultation at least once."""
    row = await pool.fetchrow(
        "SELECT k.id, k.alias, k.email <> '' AS has_email, count(c.id) AS n,"
        " coalesce(sum(c.billed_seconds), 0) AS billed, max(c.bridge_start) AS last_start,"
        " coalesce(sum(c.client_price), 0) AS price, coalesce(sum(c.earnings), 0) AS earnings"
        " FROM clients k"
        " LEFT JOIN consultations c ON c.client_id = k.id AND c.expert_id = $1"
        f" WHERE k.id = $2 AND {_KNOWN} GROUP BY k.id",
        expert_id,
        client_id,
    )
    if row is None:
        return None
    return ClientSummary(
        client_id=row["id"],
        alias=row["alias"],
        has_email=row["has_email"],
        consultations=row["n"],
        billed_seconds=int(row["billed"]),
        last_start=row["last_start"],
        client_price_total=row["price"],
        earnings_total=row["earnings"],
    )


async def latest_consultations(
    pool: asyncpg.Pool, expert_id: int, client_id: int, limit: int = 5
) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            "SELECT id, bridge_start, billed_seconds, client_price, earnings FROM consultations"
            " WHERE expert_id = $1 AND client_id = $2 ORDER BY id DESC LIMIT $3",
            expert_id,
            client_id,
            limit,
        )
    )


async def consultation(
    pool: asyncpg.Pool, expert_id: int, consultation_id: int
) -> dict[str, Any] | None:
    """The billing detail of one of this expert's consultations (None for anyone else's),
    with the billing step and minimum that explain the charged time."""
    row = await pool.fetchrow(
        "SELECT c.*, e.alias AS expert_alias, k.alias AS client_alias FROM consultations c"
        " JOIN experts e ON e.id = c.expert_id JOIN clients k ON k.id = c.client_id"
        " WHERE c.id = $1 AND c.expert_id = $2",
        consultation_id,
        expert_id,
    )
    if row is None:
        return None
    return {
        **consultations.detail(row),
        "transfer_factor": str(row["transfer_factor"]),
        "granularity_seconds": row["granularity_seconds"],
        "minimum_seconds": row["minimum_seconds"],
    }


async def notes(pool: asyncpg.Pool, expert_id: int, client_id: int, limit: int = 10) -> list[Entry]:
    rows = await pool.fetch(
        "SELECT id, body, created_at FROM client_notes WHERE expert_id = $1 AND client_id = $2"
        " ORDER BY id DESC LIMIT $3",
        expert_id,
        client_id,
        limit,
    )
    return [Entry(r["id"], r["body"], r["created_at"]) for r in rows]


async def add_note(pool: asyncpg.Pool, expert_id: int, client_id: int, body: str) -> int | None:
    """The new note's id; None if this client is not one of this expert's."""
    note_id = await pool.fetchval(
        "INSERT INTO client_notes (expert_id, client_id, body)"
        f" SELECT $1, $2, $3 WHERE {_KNOWN} RETURNING id",
        expert_id,
        client_id,
        body,
    )
    return None if note_id is None else int(note_id)


async def messages(
    pool: asyncpg.Pool, expert_id: int, client_id: int, limit: int = 5
) -> list[Entry]:
    rows = await pool.fetch(
        "SELECT m.id, m.body, m.created_at, o.sent_at IS NOT NULL AS sent,"
        " o.failed_at IS NOT NULL AS failed FROM client_messages m"
        " LEFT JOIN outbox_emails o ON o.message_id = m.id"
        " WHERE m.expert_id = $1 AND m.client_id = $2 ORDER BY m.id DESC LIMIT $3",
        expert_id,
        client_id,
        limit,
    )
    return [
        Entry(
            r["id"],
            r["body"],
            r["created_at"],
            "sent" if r["sent"] else "failed" if r["failed"] else "queued",
        )
        for r in rows
    ]


async def send_message(pool: asyncpg.Pool, expert_id: int, client_id: int, body: str) -> int | None:
    """Keep the message and queue its email to the client, in one transaction.

    None, and nothing stored, when the client has no email address (or is not one of this
    expert's clients): a message nobody can receive is not a message sent.
    """
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT k.alias, k.email, k.language, e.alias AS expert_alias"
            " FROM clients k JOIN experts e ON e.id = $1"
            f" WHERE k.id = $2 AND k.email <> '' AND {_KNOWN}",
            expert_id,
            client_id,
        )
        if row is None:
            return None
        message_id = int(
            await conn.fetchval(
                "INSERT INTO client_messages (expert_id, client_id, body) VALUES ($1, $2, $3)"
                " RETURNING id",
                expert_id,
                client_id,
                body,
            )
        )
        payload = {
            "message_id": message_id,
            "expert_alias": row["expert_alias"],
            "client_alias": row["alias"],
            "message": body,
        }
        await outbox.queue(
            conn,
            "client_message",
            to=row["email"],
            language=row["language"],
            payload=payload,
            message_id=message_id,
        )
    return message_id
