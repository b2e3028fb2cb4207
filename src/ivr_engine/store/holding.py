"""Callers on the line: the inbound call record, a holding caller's place in the list, their
move to a callback, and the figures of calls in.

A holding caller is a waiting request with ``holding_channel`` set (migration 0013). Hanging
up, or pressing 1, clears it: the request keeps its place and becomes a callback. A missed call
(hung up while holding, the engine gone) also gets ``callback_by``, the promise of a call back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from ivr_engine.domain.holding import RECENT_CONSULTATIONS
from ivr_engine.domain.requests import RequestState

ACTIVE = ["ringing_expert", "ringing_client", "connected"]
# A caller leaving the line in these states keeps the request, as a callback.
CALLBACK_STATES = ["waiting", "ringing_expert"]


@dataclass(frozen=True)
class Place:
    """Where a holding caller's request stands now."""

    state: RequestState
    attempts: int
    end_reason: str
    ahead: int  # waiting requests of the same expert served before this one
    expert_busy: bool  # the expert is on (or being rung for) another request
    recent_seconds: list[int]  # the expert's latest consultations, for the wait estimate
    holding: bool  # the caller's channel is still this request's


@dataclass(frozen=True)
class Expert:
    id: int
    language: str
    category: str
    takes_calls: bool  # taking requests and the phone channel on


@dataclass(frozen=True)
class Holder:
    """A holding caller whose engine is gone."""

    request_id: int
    channel: str
    engine: uuid.UUID | None
    state: RequestState
    language: str  # the client's, as their service number set it


@dataclass(frozen=True)
class DayFigures:
    day: date
    calls_in: int
    answered: int
    abandoned: int
    withheld: int
    average_answer_seconds: float | None  # from the call's start to the bridge
    missed: int  # requests that became callbacks because the call was missed
    called_back_in_time: int  # of those, a call to the client started by ``callback_by``
    missed_due: int  # of those, the ones whose deadline has passed or that were called back

    @property
    def called_back_share(self) -> float | None:
        return self.called_back_in_time / self.missed_due if self.missed_due else None


# -- the inbound call record ------------------------------------------------------------
async def record_call(
    pool: asyncpg.Pool, channel_id: str, *, dialled: str, caller: str, withheld: bool
) -> None:
    await pool.execute(
        "INSERT INTO inbound_calls (channel_id, dialled, caller, withheld)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (channel_id) DO NOTHING",
        channel_id,
        dialled,
        caller,
        withheld,
    )


async def note_call(
    pool: asyncpg.Pool,
    channel_id: str,
    *,
    expert_id: int | None = None,
    request_id: int | None = None,
    bridged: bool = False,
) -> None:
    await pool.execute(
        "UPDATE inbound_calls SET expert_id = coalesce($2, expert_id),"
        " request_id = coalesce($3, request_id),"
        " bridged_at = CASE WHEN $4 THEN coalesce(bridged_at, now()) ELSE bridged_at END"
        " WHERE channel_id = $1",
        channel_id,
        expert_id,
        request_id,
        bridged,
    )


async def end_call(pool: asyncpg.Pool, channel_id: str, outcome: str) -> None:
    """The call's outcome; the first one written stays (a bridged call stays 'bridged')."""
    await pool.execute(
        "UPDATE inbound_calls SET outcome = CASE WHEN bridged_at IS NOT NULL THEN 'bridged'"
        " ELSE $2 END, ended_at = now() WHERE channel_id = $1 AND outcome = 'open'",
        channel_id,
        outcome,
    )


# -- choosing the expert -----------------------------------------------------------------
async def expert(pool: asyncpg.Pool, expert_id: int) -> Expert | None:
    row = await pool.fetchrow(
        "SELECT id, language, category, taking_calls AND channel_phone AS takes"
        " FROM experts WHERE id = $1",
        expert_id,
    )
    if row is None:
        return None
    return Expert(row["id"], row["language"], row["category"], row["takes"])


async def first_available(pool: asyncpg.Pool, category: str) -> list[int]:
    """Experts of ``category`` ('' any) taking phone calls, the shortest list first; the
    caller checks their hours."""
    rows = await pool.fetch(
        "SELECT e.id FROM experts e WHERE e.taking_calls AND e.channel_phone"
        " AND ($1 = '' OR e.category = $1)"
        " ORDER BY (SELECT count(*) FROM requests r WHERE r.expert_id = e.id"
        "           AND r.state IN ('waiting', 'ringing_expert', 'ringing_client', 'connected')),"
        " e.id",
        category,
    )
    return [r["id"] for r in rows]


async def live_request(pool: asyncpg.Pool, expert_id: int, client_id: int) -> int | None:
    """The client's live entry in this expert's list, if any."""
    return await pool.fetchval(  # type: ignore[no-any-return]
        "SELECT id FROM requests WHERE expert_id = $1 AND client_id = $2"
        " AND state IN ('waiting', 'ringing_expert', 'ringing_client', 'connected')",
        expert_id,
        client_id,
    )


# -- holding -----------------------------------------------------------------------------
async def place(pool: asyncpg.Pool, request_id: int, channel: str) -> Place:
    row = await pool.fetchrow(
        "SELECT me.state, me.attempts, me.end_reason, me.holding_channel = $2 AS holding,"
        " (SELECT count(*) FROM requests w WHERE w.expert_id = me.expert_id"
        "  AND w.state = 'waiting' AND w.id <> me.id"
        "  AND (NOT w.priority, w.list_rank, w.next_attempt_at, w.id)"
        "    < (NOT me.priority, me.list_rank, me.next_attempt_at, me.id)) AS ahead,"
        " EXISTS (SELECT 1 FROM requests a WHERE a.expert_id = me.expert_id AND a.id <> me.id"
        "  AND a.state = ANY($3::text[])) AS busy,"
        " coalesce((SELECT array_agg(s) FROM (SELECT c.billed_seconds AS s FROM consultations c"
        "  WHERE c.expert_id = me.expert_id AND c.billed_seconds IS NOT NULL"
        f"  ORDER BY c.id DESC LIMIT {RECENT_CONSULTATIONS}) recent), '{{}}') AS recent"
        " FROM requests me WHERE me.id = $1",
        request_id,
        channel,
        ACTIVE,
    )
    return Place(
        state=RequestState(row["state"]),
        attempts=row["attempts"],
        end_reason=row["end_reason"],
        ahead=row["ahead"],
        expert_busy=row["busy"],
        recent_seconds=list(row["recent"]),
        holding=bool(row["holding"]),
    )


async def stop_holding(
    pool: asyncpg.Pool,
    request_id: int,
    channel: str,
    *,
    missed_minutes: float | None,
    at: datetime | None = None,
) -> bool:
    """The caller leaves the line. A request not yet taken into a call (waiting, or its
    expert being rung) keeps its place as a callback; a missed call (``missed_minutes``
    given) is promised a call back within that long of ``at`` (when the caller hung up, so a
    write retried through a PostgreSQL outage keeps the promise; default now). True when it
    became a callback; False when the channel was no longer this request's or the request
    had gone past that."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "UPDATE requests SET holding_channel = NULL, holding_engine = NULL,"
            " missed_at = CASE WHEN $3::float8 IS NULL OR NOT (state = ANY($4::text[]))"
            "   THEN missed_at ELSE COALESCE($5::timestamptz, now()) END,"
            " callback_by = CASE WHEN $3::float8 IS NULL OR NOT (state = ANY($4::text[]))"
            "   THEN callback_by"
            "   ELSE COALESCE($5::timestamptz, now()) + make_interval(secs => $3::float8 * 60) END,"
            " updated_at = now()"
            " WHERE id = $1 AND holding_channel = $2 RETURNING state",
            request_id,
            channel,
            missed_minutes,
            CALLBACK_STATES,
            at,
        )
        if row is None or row["state"] not in CALLBACK_STATES:
            return False
        reason = "missed_call" if missed_minutes is not None else "callback_chosen"
        await conn.execute(
            "INSERT INTO request_events (request_id, from_state, to_state, detail)"
            " VALUES ($1, $2, $2, $3)",
            request_id,
            row["state"],
            reason,
        )
    return True


async def held_attempt(pool: asyncpg.Pool, request_id: int, channel_id: str) -> None:
    """The caller's own channel becomes the request's client leg (no call placed), answered
    now. A caller who holds again for another expert reuses the row of their channel."""
    await pool.execute(
        "INSERT INTO call_attempts (request_id, leg, purpose, channel_id, dial_string,"
        " answered_at, outcome) VALUES ($1, 'client', 'inbound', $2, 'inbound', now(), 'answered')"
        " ON CONFLICT (channel_id) DO UPDATE SET request_id = $1, answered_at = now(),"
        " ended_at = NULL, outcome = 'answered'",
        request_id,
        channel_id,
    )


async def abandoned_holders(
    pool: asyncpg.Pool, me: uuid.UUID, lease: float, *, stale_ok: bool = True
) -> list[Holder]:
    """Holding callers whose engine stopped or (``stale_ok``: see store.engines.abandoned)
    let its lease expire; never ``me``'s."""
    rows = await pool.fetch(
        "SELECT r.id, r.holding_channel, r.holding_engine, r.state, c.language FROM requests r"
        " JOIN clients c ON c.id = r.client_id LEFT JOIN engines g ON g.id = r.holding_engine"
        " WHERE r.holding_channel IS NOT NULL AND r.holding_engine IS DISTINCT FROM $1"
        " AND (g.id IS NULL OR g.stopped_at IS NOT NULL"
        "      OR ($3 AND g.heartbeat_at < now() - make_interval(secs => $2)))"
        " ORDER BY r.id",
        me,
        lease,
        stale_ok,
    )
    return [
        Holder(
            r["id"],
            r["holding_channel"],
            r["holding_engine"],
            RequestState(r["state"]),
            r["language"],
        )
        for r in rows
    ]


async def adopt_holder(pool: asyncpg.Pool, holder: Holder, me: uuid.UUID) -> bool:
    """Become the engine of an abandoned holding caller (compare-and-set)."""
    taken = await pool.fetchval(
        "UPDATE requests SET holding_engine = $3 WHERE id = $1 AND holding_channel = $2"
        " AND holding_engine IS NOT DISTINCT FROM $4 RETURNING id",
        holder.request_id,
        holder.channel,
        me,
        holder.engine,
    )
    return taken is not None


# -- what the panel and the figures show -----------------------------------------------
@dataclass(frozen=True)
class HoldingCaller:
    request_id: int
    expert_id: int
    expert_alias: str
    client_alias: str
    position: int  # in the expert's list, in serving order
    since: datetime


async def holding_callers(pool: asyncpg.Pool) -> list[HoldingCaller]:
    """Every caller on the line now, across experts, longest waiting first."""
    rows = await pool.fetch(
        "SELECT * FROM (SELECT r.id, r.expert_id, e.alias AS expert_alias, c.alias,"
        " r.created_at, r.holding_channel, row_number() OVER (PARTITION BY r.expert_id"
        "   ORDER BY r.priority DESC, r.list_rank, r.next_attempt_at, r.id) AS position"
        " FROM requests r JOIN clients c ON c.id = r.client_id"
        " JOIN experts e ON e.id = r.expert_id WHERE r.state = 'waiting') w"
        " WHERE w.holding_channel IS NOT NULL ORDER BY w.created_at, w.id"
    )
    return [
        HoldingCaller(
            request_id=r["id"],
            expert_id=r["expert_id"],
            expert_alias=r["expert_alias"],
            client_alias=r["alias"] or "—",
            position=r["position"],
            since=r["created_at"],
        )
        for r in rows
    ]


async def figures(pool: asyncpg.Pool, days: list[date], zone: ZoneInfo) -> list[DayFigures]:
    """Calls in per service day (in ``zone``): what became of them, and the missed calls
    called back in time (a missed call counts on the day it was missed)."""
    return [await _day(pool, day, zone) for day in days]


async def _day(pool: asyncpg.Pool, day: date, zone: ZoneInfo) -> DayFigures:
    start = datetime.combine(day, time(0), zone)
    end = datetime.combine(day + timedelta(days=1), time(0), zone)
    calls = await pool.fetchrow(
        "SELECT count(*) AS calls_in,"
        " count(*) FILTER (WHERE bridged_at IS NOT NULL) AS answered,"
        " count(*) FILTER (WHERE outcome IN ('abandoned', 'interrupted')) AS abandoned,"
        " count(*) FILTER (WHERE withheld) AS withheld,"
        " avg(extract(epoch FROM bridged_at - started_at))::float8 AS asa"
        " FROM inbound_calls WHERE started_at >= $1 AND started_at < $2",
        start,
        end,
    )
    missed = await pool.fetchrow(
        "SELECT count(*) AS missed,"
        " count(*) FILTER (WHERE cb.first <= r.callback_by) AS in_time,"
        " count(*) FILTER (WHERE r.callback_by <= now() OR cb.first IS NOT NULL) AS due"
        " FROM requests r LEFT JOIN LATERAL (SELECT min(a.started_at) AS first"
        "   FROM call_attempts a WHERE a.request_id = r.id AND a.leg = 'client'"
        "   AND a.purpose = 'connect' AND a.started_at >= r.missed_at) cb ON true"
        " WHERE r.missed_at >= $1 AND r.missed_at < $2",
        start,
        end,
    )
    return DayFigures(
        day=day,
        calls_in=calls["calls_in"],
        answered=calls["answered"],
        abandoned=calls["abandoned"],
        withheld=calls["withheld"],
        average_answer_seconds=calls["asa"],
        missed=missed["missed"],
        called_back_in_time=missed["in_time"],
        missed_due=missed["due"],
    )
