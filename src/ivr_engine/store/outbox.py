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
