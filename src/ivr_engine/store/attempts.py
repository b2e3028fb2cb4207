"""Call attempts: one row per dialled leg, written before the originate (the intent first)."""

from __future__ import annotations

from datetime import datetime

import asyncpg


async def new(
    pool: asyncpg.Pool, request_id: int, *, leg: str, purpose: str, dial_string: str
) -> str:
    """Record the intent to dial before dialling; returns the channel id to use."""
    return str(
        await pool.fetchval(
            "WITH n AS (SELECT nextval('call_attempts_id_seq') AS id)"
            " INSERT INTO call_attempts (id, request_id, leg, purpose, channel_id, dial_string)"
            " SELECT n.id, $1::bigint, $2, $3,"
            " 'ivr-' || $1::bigint::text || '-' || n.id::text, $4 FROM n"
            " RETURNING channel_id",
            request_id,
            leg,
            purpose,
            dial_string,
        )
    )


async def answered(pool: asyncpg.Pool, channel_id: str, at: datetime) -> None:
    await pool.execute(
        "UPDATE call_attempts SET answered_at = $2, outcome = 'answered' WHERE channel_id = $1",
        channel_id,
        at,
    )


async def ended(
    pool: asyncpg.Pool,
    channel_id: str,
    *,
    outcome: str,
    ended_at: datetime | None,
    cause: int | None,
    cause_text: str,
    dtmf: str = "",
    choice: str | None = None,
) -> None:
    await pool.execute(
        "UPDATE call_attempts SET outcome = $2, ended_at = coalesce($3, now()),"
        " hangup_cause = $4, hangup_text = $5, dtmf = $6, choice = $7"
        " WHERE channel_id = $1",
        channel_id,
        outcome,
        ended_at,
        cause,
        cause_text,
        dtmf,
        choice,
    )
