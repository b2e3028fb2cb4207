"""Asterisk's Channel Event Logging: when channels really left a bridge or hung up.

Asterisk's cel_pgsql writes the rows of table ``cel`` (migrations/0009_cel.sql) itself, as
events happen, whether an engine is connected or not; this module only reads them. A row's
``uniqueid`` is the channel id (the one the engine chose at originate) and ``event_at`` the
time Asterisk stamped on the event, to the microsecond: the very timestamp ARI puts, to the
millisecond, on the matching event (both come from one Stasis message).

Channel ids are not unique forever (another Asterisk, another test database, the same
request id again), so every look-up takes ``since``: only rows at or after it count.

What is missing: cel_pgsql drops the rows of events that happen while PostgreSQL is
unreachable (see the README, *Channel Event Logging*). None here means "Asterisk recorded
nothing", never "the channel is still up".
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

BRIDGE_EXIT = "BRIDGE_EXIT"
# A hung-up channel gets both, with the same time (cel.c, cel_channel_state_change);
# HANGUP carries the cause in ``extra``.
HANGUP = "HANGUP"
CHAN_END = "CHAN_END"


@dataclass(frozen=True)
class ChannelEnd:
    """When a channel hung up, as Asterisk recorded it."""

    at: datetime
    cause: int | None  # Q.850 cause of the HANGUP row; None if only CHAN_END was recorded


async def bridge_end(
    pool: asyncpg.Pool, channel_ids: Sequence[str], since: datetime
) -> datetime | None:
    """When the first of ``channel_ids`` left its bridge, at or after ``since``.

    Each channel counts from its BRIDGE_EXIT row, or, if that row is missing (a row dropped
    during a database outage), from its HANGUP/CHAN_END row: a channel that hung up is out
    of the bridge. None when Asterisk recorded neither for any of them.
    """
    _require_aware(since)
    value: datetime | None = await pool.fetchval(
        "SELECT min(coalesce(left_at, gone_at)) FROM ("
        "  SELECT min(event_at) FILTER (WHERE eventtype = $3) AS left_at,"
        "         min(event_at) FILTER (WHERE eventtype IN ($4, $5)) AS gone_at"
        "  FROM cel WHERE uniqueid = ANY($1::text[]) AND event_at >= $2"
        "  GROUP BY uniqueid) AS per_channel",
        list(channel_ids),
        since,
        BRIDGE_EXIT,
        HANGUP,
        CHAN_END,
    )
    return value


async def channel_end(pool: asyncpg.Pool, channel_id: str, since: datetime) -> ChannelEnd | None:
    """When ``channel_id`` hung up at or after ``since``, and why; None if not recorded."""
    _require_aware(since)
    row = await pool.fetchrow(
        "SELECT min(event_at) AS at,"
        " (array_agg(extra ORDER BY event_at) FILTER (WHERE eventtype = $3))[1] AS extra"
        " FROM cel WHERE uniqueid = $1 AND event_at >= $2 AND eventtype IN ($3, $4)",
        channel_id,
        since,
        HANGUP,
        CHAN_END,
    )
    if row is None or row["at"] is None:
        return None
    return ChannelEnd(at=row["at"], cause=_hangup_cause(row["extra"]))


def _hangup_cause(extra: str | None) -> int | None:
    # HANGUP's extra is {"hangupcause": 16, "hangupsource": "...", "dialstatus": "..."}.
    try:
        cause = json.loads(extra or "").get("hangupcause")
    except (ValueError, AttributeError):
        return None
    return cause if isinstance(cause, int) else None


def _require_aware(since: datetime) -> None:
    if since.tzinfo is None:
        raise ValueError("since must carry a time zone (event_at is an instant)")
