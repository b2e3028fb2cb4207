"""Emails are queued in the transaction of the event they report (sent by ivr_engine.mail)."""

from __future__ import annotations

import json
from typing import Any

import asyncpg


async def queue(
    conn: asyncpg.Connection,
    kind: str,
    *,
    to: str,
    language: str,
    payload: dict[str, Any],
    request_id: int | None = None,
    consultation_id: int | None = None,
    message_id: int | None = None,
) -> None:
    """Queue an email in the caller's transaction: it exists if and only if the event does."""
    await conn.execute(
        "INSERT INTO outbox_emails"
        " (kind, request_id, consultation_id, message_id, to_address, language, payload)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)",
        kind,
        request_id,
        consultation_id,
        message_id,
        to,
        language,
        json.dumps(payload),
    )


async def rows(pool: asyncpg.Pool, *, which: str, limit: int = 100) -> list[asyncpg.Record]:
    """Outbox rows, newest first: ``pending`` (not sent, not given up), ``failed`` (given
    up after the last retry), ``sent`` or ``all``."""
    where = {
        "pending": "sent_at IS NULL AND failed_at IS NULL",
        "failed": "failed_at IS NOT NULL",
        "sent": "sent_at IS NOT NULL",
        "all": "true",
    }[which]
    return list(
        await pool.fetch(
            "SELECT id, kind, to_address, language, attempts, created_at, next_try_at, sent_at,"
            f" failed_at, last_error FROM outbox_emails WHERE {where} ORDER BY id DESC LIMIT $1",
            limit,
        )
    )


async def retry(pool: asyncpg.Pool, ids: list[int] | None) -> list[int]:
    """Give failed rows (``ids``, or every failed one) a new round of attempts, due now;
    every engine's sender is woken at once."""
    done = await pool.fetch(
        "UPDATE outbox_emails SET failed_at = NULL, attempts = 0, next_try_at = now(),"
        " last_error = '' WHERE failed_at IS NOT NULL AND sent_at IS NULL"
        " AND ($1::bigint[] IS NULL OR id = ANY($1::bigint[])) RETURNING id",
        ids,
    )
    if done:
        # The insert trigger wakes the senders on new rows only: wake them for these too.
        await pool.execute("SELECT pg_notify('ivr_outbox', '')")
    return sorted(int(r["id"]) for r in done)
