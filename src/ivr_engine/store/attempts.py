"""Call attempts: one row per dialled leg, written before the originate (the intent first)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from ivr_engine.domain.requests import RequestState, check_transition
from ivr_engine.errors import Conflict
from ivr_engine.store.waiting import MOVE_CTES


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


async def new_after_move(
    pool: asyncpg.Pool,
    request_id: int,
    current: RequestState,
    target: RequestState,
    reason: str,
    *,
    leg: str,
    purpose: str,
    dial_string: str,
) -> str:
    """A state move and the intent to dial that follows it, in one statement (the client
    is dialled the moment the expert accepts); a Conflict, and no attempt row, if the
    request is no longer ``current``. Returns the channel id to use."""
    check_transition(current, target)
    channel_id = await pool.fetchval(
        _NEW_AFTER_MOVE_SQL,
        request_id,
        current.value,
        target.value,
        target.is_final,
        reason,
        leg,
        purpose,
        dial_string,
    )
    if channel_id is None:
        raise Conflict(f"request {request_id} is no longer {current}")
    return str(channel_id)


_NEW_AFTER_MOVE_SQL = f"""
WITH {MOVE_CTES}
INSERT INTO call_attempts (id, request_id, leg, purpose, channel_id, dial_string)
SELECT n.id, moved.id, $6, $7, 'ivr-' || moved.id::text || '-' || n.id::text, $8
FROM moved CROSS JOIN LATERAL (SELECT nextval('call_attempts_id_seq') AS id) n
RETURNING channel_id
"""


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


@dataclass(frozen=True)
class AttemptEnd:
    """The end of one attempt, for ``ended`` or for a statement that writes it with others
    (``consultations.finish``)."""

    channel_id: str
    outcome: str
    ended_at: datetime | None
    cause: int | None
    cause_text: str
    dtmf: str = ""
    choice: str | None = None


def end_columns(ends: Sequence[AttemptEnd]) -> tuple[list[object], ...]:
    """``ends`` as the seven arrays ``ended_sql`` unnests, in its column order."""
    return (
        [e.channel_id for e in ends],
        [e.outcome for e in ends],
        [e.ended_at for e in ends],
        [e.cause for e in ends],
        [e.cause_text for e in ends],
        [e.dtmf for e in ends],
        [e.choice for e in ends],
    )


def ended_sql(first: int) -> str:
    """An UPDATE of call_attempts from the arrays of ``end_columns`` as parameters
    ``$first`` .. ``$first+6``, for a CTE of the caller's statement."""
    a = [f"${first + i}" for i in range(7)]
    return (
        "UPDATE call_attempts a SET outcome = x.outcome, ended_at = coalesce(x.ended_at, now()),"
        " hangup_cause = x.cause, hangup_text = x.cause_text, dtmf = x.dtmf, choice = x.choice"
        f" FROM unnest({a[0]}::text[], {a[1]}::text[], {a[2]}::timestamptz[], {a[3]}::int[],"
        f" {a[4]}::text[], {a[5]}::text[], {a[6]}::text[])"
        " AS x(channel_id, outcome, ended_at, cause, cause_text, dtmf, choice)"
        " WHERE a.channel_id = x.channel_id"
    )
