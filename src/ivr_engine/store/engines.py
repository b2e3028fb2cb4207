"""Engines and their leases: who runs which call, and whose work may be taken over.

An engine registers a fresh identity at start and renews its lease (``heartbeat_at``) every
few seconds; a clean stop sets ``stopped_at``. Another engine may take a request over only
when the request's owner stopped, or its lease has expired, by one compare-and-set.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from ivr_engine.domain.requests import RequestState
from ivr_engine.store.waiting import ACTIVE

EXPIRED = "(g.stopped_at IS NOT NULL OR g.heartbeat_at < now() - make_interval(secs => $2))"


@dataclass(frozen=True)
class Abandoned:
    """An active request whose engine is gone, with what it had dialled and bridged."""

    request_id: int
    state: RequestState
    owner: uuid.UUID | None
    channels: list[str]
    consultation_id: int | None
    bridge_id: str | None
    expert_channel: str | None
    client_channel: str | None
    bridge_start: datetime | None
    seen_at: datetime | None
    expert_language: str
    acceptance_ivr: bool


async def register(
    pool: asyncpg.Pool, engine_id: uuid.UUID, ari_app: str, host: str, pid: int
) -> None:
    await pool.execute(
        "INSERT INTO engines (id, ari_app, host, pid) VALUES ($1, $2, $3, $4)",
        engine_id,
        ari_app,
        host,
        pid,
    )


async def heartbeat(
    pool: asyncpg.Pool, engine_id: uuid.UUID, timeout: float, *, watched: list[int]
) -> None:
    """Renew the lease, and note that the bridges of ``watched`` requests are up now: one
    statement (no BEGIN/COMMIT round trips every few seconds)."""
    async with pool.acquire(timeout=timeout) as conn:
        if not watched:
            await conn.execute(
                "UPDATE engines SET heartbeat_at = now() WHERE id = $1", engine_id, timeout=timeout
            )
            return
        await conn.execute(
            # A data-modifying WITH runs whether or not the main statement reads it.
            "WITH renewed AS (UPDATE engines SET heartbeat_at = now() WHERE id = $1)"
            " UPDATE consultations SET seen_at = now()"
            " WHERE request_id = ANY($2::bigint[]) AND bridge_end IS NULL",
            engine_id,
            watched,
            timeout=timeout,
        )


async def stopped(pool: asyncpg.Pool, engine_id: uuid.UUID) -> None:
    """A clean stop: the calls this engine leaves up may be adopted at once."""
    await pool.execute(
        "UPDATE engines SET stopped_at = now(), heartbeat_at = now() WHERE id = $1", engine_id
    )


async def abandoned(
    pool: asyncpg.Pool, me: uuid.UUID, lease: float, *, stale_ok: bool = True
) -> list[Abandoned]:
    """Active requests owned by no live engine (never by ``me``). With ``stale_ok`` False,
    only those of engines that stopped cleanly (or of none): a stale heartbeat proves
    nothing until this engine has itself been heard for a whole lease."""
    rows = await pool.fetch(
        "SELECT r.id, r.state, r.owner, c.id AS consultation_id, c.bridge_id,"
        " c.expert_channel_id, c.client_channel_id, c.bridge_start, c.seen_at,"
        " coalesce(e.language, 'en') AS expert_language,"
        " coalesce(e.acceptance_ivr, true) AS acceptance_ivr,"
        " coalesce((SELECT array_agg(a.channel_id ORDER BY a.id) FROM call_attempts a"
        "           WHERE a.request_id = r.id AND a.ended_at IS NULL), '{}') AS channels"
        # LEFT: a category request being offered has no expert yet (migration 0015).
        " FROM requests r LEFT JOIN experts e ON e.id = r.expert_id"
        " LEFT JOIN engines g ON g.id = r.owner"
        " LEFT JOIN consultations c ON c.request_id = r.id AND c.bridge_end IS NULL"
        f" WHERE r.state = ANY($1::text[]) AND (r.owner IS NULL OR (r.owner <> $3 AND {EXPIRED}"
        " AND ($4 OR g.stopped_at IS NOT NULL)))"
        " ORDER BY r.id",
        ACTIVE,
        lease,
        me,
        stale_ok,
    )
    return [
        Abandoned(
            request_id=r["id"],
            state=RequestState(r["state"]),
            owner=r["owner"],
            channels=list(r["channels"]),
            consultation_id=r["consultation_id"],
            bridge_id=r["bridge_id"],
            expert_channel=r["expert_channel_id"],
            client_channel=r["client_channel_id"],
            bridge_start=r["bridge_start"],
            seen_at=r["seen_at"],
            expert_language=r["expert_language"],
            acceptance_ivr=r["acceptance_ivr"],
        )
        for r in rows
    ]


async def take(
    pool: asyncpg.Pool, request_id: int, previous: uuid.UUID | None, me: uuid.UUID, lease: float
) -> bool:
    """Become the owner of an abandoned request; False if someone else was quicker or its
    engine came back to life."""
    taken = await pool.fetchval(
        "UPDATE requests r SET owner = $3 WHERE r.id = $1 AND r.owner IS NOT DISTINCT FROM $4"
        " AND (r.owner IS NULL OR EXISTS (SELECT 1 FROM engines g WHERE g.id = r.owner"
        f" AND {EXPIRED})) RETURNING r.id",
        request_id,
        lease,
        me,
        previous,
    )
    return taken is not None
