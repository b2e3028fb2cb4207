"""What Asterisk itself recorded about a channel (CEL rows written by cel_pgsql)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg


async def bridge_end(
    pool: asyncpg.Pool, channel_ids: Sequence[str], since: datetime
) -> datetime | None:
    """When the first of these channels left its bridge (or hung up), per Asterisk."""
    try:
        return await pool.fetchval(  # type: ignore[no-any-return]
            "SELECT min(eventtime) FROM cel WHERE uniqueid = ANY($1::text[])"
            " AND eventtype IN ('BRIDGE_EXIT', 'HANGUP', 'CHAN_END') AND eventtime >= $2",
            list(channel_ids),
            since,
        )
    except asyncpg.UndefinedTableError:
        return None
