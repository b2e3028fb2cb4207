"""The waiting lists: requests entering, leaving, being solicited and moving between states.

Every state change is one transaction that checks the move against the domain rules,
updates the row only if it is still in the state the caller saw, and appends to
``request_events``. The trigger of migration 0006/0007 notifies ``ivr_requests`` on
each change, which wakes the dispatchers and the live pages of every engine.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from ivr_engine.domain.holding import Policy, list_rank
from ivr_engine.domain.requests import RequestState, RequestView, can_leave, check_transition
from ivr_engine.errors import Conflict, NotFound
from ivr_engine.store import outbox

S = RequestState
ACTIVE = [s.value for s in (S.RINGING_EXPERT, S.RINGING_CLIENT, S.CONNECTED)]
ONE_LIVE_PER_CLIENT = "requests_one_live_per_client"  # the unique index of migration 0010


@dataclass(frozen=True)
class Holding:
    """A caller on the line for a new request: their channel and the engine holding it."""

    channel: str
    engine: uuid.UUID | None


def view_of(row: asyncpg.Record) -> RequestView:
    return RequestView(
        id=row["id"],
        expert_id=row["expert_id"],
        client_id=row["client_id"],
        state=RequestState(row["state"]),
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        end_reason=row["end_reason"],
        created_at=row["created_at"],
        category=row["category"],
    )


async def create(
    pool: asyncpg.Pool,
    expert_id: int,
    client_id: int,
    *,
    policy: Policy = "fifo",
    holding: Holding | None = None,
    not_before: datetime | None = None,
) -> RequestView:
    """A new entry at the end of the expert's list, ranked by ``policy``; ``holding`` is the
    caller's channel (and engine) when they hold on the line; ``not_before`` a callback time.
    One statement: the checks, the row and its event."""
    try:
        row = await pool.fetchrow(
            _CREATE_SQL,
            expert_id,
            client_id,
            ["waiting", *ACTIVE],
            list_rank(policy, earlier_consultations=1),
            list_rank(policy, earlier_consultations=0),
            holding.channel if holding else None,
            holding.engine if holding else None,
            not_before,
        )
    except asyncpg.UniqueViolationError as err:
        # Another join of the same client committed after this statement's snapshot: the
        # index of migration 0010 is what really keeps one live entry per client.
        if err.constraint_name != ONE_LIVE_PER_CLIENT:
            raise
        raise Conflict(f"client {client_id} is already in this list") from err
    if row["taking_calls"] is None:
        raise NotFound(f"expert {expert_id} does not exist")
    if not row["taking_calls"]:
        raise Conflict(f"expert {expert_id} is not taking calls")
    if not row["client_found"]:
        raise NotFound(f"client {client_id} does not exist")
    if row["dup"] is not None:
        raise Conflict(f"client {client_id} is already in this list (request {row['dup']})")
    return view_of(row)


# The expert's row is locked first (NO KEY UPDATE, as the waiting-list trigger of migration
# 0012 takes it): two joins of one list wait for each other instead of deadlocking. The
# rank: $4 for a client with an earlier consultation, else $5 (domain.holding.list_rank).
_CREATE_SQL = """
WITH e AS (
    SELECT taking_calls FROM experts WHERE id = $1 FOR NO KEY UPDATE
), k AS (
    SELECT 1 FROM clients WHERE id = $2
), dup AS (
    SELECT id FROM requests WHERE expert_id = $1 AND client_id = $2
    AND state = ANY($3::text[]) LIMIT 1
), made AS (
    INSERT INTO requests (expert_id, client_id, list_rank, holding_channel, holding_engine,
                          next_attempt_at)
    SELECT $1, $2,
           CASE WHEN EXISTS (SELECT 1 FROM consultations WHERE client_id = $2)
                THEN $4::smallint ELSE $5::smallint END,
           $6, $7, coalesce($8, now())
    FROM e WHERE e.taking_calls AND EXISTS (SELECT 1 FROM k)
      AND NOT EXISTS (SELECT 1 FROM dup)
    RETURNING *
), logged AS (
    INSERT INTO request_events (request_id, from_state, to_state, detail)
    SELECT id, NULL, 'waiting', 'created' FROM made
)
SELECT (SELECT taking_calls FROM e) AS taking_calls, EXISTS (SELECT 1 FROM k) AS client_found,
       (SELECT id FROM dup) AS dup, made.*
FROM (VALUES (1)) AS one LEFT JOIN made ON true
"""


async def get(pool: asyncpg.Pool, request_id: int) -> RequestView:
    row = await pool.fetchrow("SELECT * FROM requests WHERE id = $1", request_id)
    if row is None:
        raise NotFound(f"request {request_id} does not exist")
    return view_of(row)


async def leave(pool: asyncpg.Pool, request_id: int) -> RequestView:
    """The client leaves the waiting list: the request is recorded as lost."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow("SELECT state FROM requests WHERE id = $1 FOR UPDATE", request_id)
        if row is None:
            raise NotFound(f"request {request_id} does not exist")
        state = RequestState(row["state"])
        if not can_leave(state):
            raise Conflict(f"request {request_id} is {state}: it can no longer be left")
        return await move_in(conn, request_id, state, S.LOST, "client_left")


async def solicit(pool: asyncpg.Pool, request_id: int) -> RequestView:
    """The expert asks to be called now for a client still in the waiting list."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT state, expert_id FROM requests WHERE id = $1 FOR UPDATE", request_id
        )
        if row is None:
            raise NotFound(f"request {request_id} does not exist")
        if row["state"] != S.WAITING:
            raise Conflict(f"request {request_id} is {row['state']}, not waiting")
        # Asking to be called now also ends a pause: the expert is plainly available.
        await conn.execute(
            "UPDATE experts SET unreachable_until = NULL, paused_until = NULL WHERE id = $1",
            row["expert_id"],
        )
        updated = await conn.fetchrow(
            "UPDATE requests SET next_attempt_at = now(), updated_at = now()"
            " WHERE id = $1 RETURNING *",
            request_id,
        )
        await event(conn, request_id, S.WAITING, S.WAITING, "solicited")
    return view_of(updated)


async def move(
    pool: asyncpg.Pool,
    request_id: int,
    current: RequestState,
    target: RequestState,
    reason: str = "",
) -> RequestView:
    """One state move and its event row in one statement (one round trip, atomic as one)."""
    check_transition(current, target)
    row = await pool.fetchrow(
        _MOVE_SQL, request_id, current.value, target.value, target.is_final, reason
    )
    if row is None:
        raise Conflict(f"request {request_id} is no longer {current}")
    return view_of(row)


_MOVE_SET = (
    "UPDATE requests SET state = $3, updated_at = now(),"
    " end_reason = CASE WHEN $4 THEN $5 ELSE end_reason END,"
    " ended_at = CASE WHEN $4 THEN now() ELSE NULL END"
    " WHERE id = $1 AND state = $2 RETURNING *"
)
# The move ($1 request, $2 from, $3 to, $4 final?, $5 reason) and its event row as two
# CTEs, ``moved`` (the request's row) and ``logged``, for a statement that does more.
MOVE_CTES = (
    f"moved AS ({_MOVE_SET}),"
    " logged AS (INSERT INTO request_events (request_id, from_state, to_state, detail)"
    " SELECT id, $2, $3, $5 FROM moved)"
)
_MOVE_SQL = f"WITH {MOVE_CTES} SELECT * FROM moved"


async def missed(
    pool: asyncpg.Pool, request_id: int, *, retry_delay: float, max_attempts: int, reason: str
) -> RequestView:
    """The expert did not take the call: retry later, or lose the request."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT r.attempts, r.expert_id, r.state, e.email, e.language, c.alias"
            " FROM requests r JOIN experts e ON e.id = r.expert_id"
            " JOIN clients c ON c.id = r.client_id WHERE r.id = $1 FOR UPDATE OF r",
            request_id,
        )
        if row is None:
            raise NotFound(f"request {request_id} does not exist")
        current = RequestState(row["state"])
        if row["attempts"] >= max_attempts:
            view = await move_in(conn, request_id, current, S.LOST, "expert_unreachable")
            kind = "expert_missed_request_lost"
        else:
            await conn.execute(
                "UPDATE experts SET unreachable_until = now() + make_interval(secs => $2)"
                " WHERE id = $1",
                row["expert_id"],
                retry_delay,
            )
            await conn.execute(
                "UPDATE requests SET next_attempt_at = now() + make_interval(secs => $2)"
                " WHERE id = $1",
                request_id,
                retry_delay,
            )
            view = await move_in(conn, request_id, current, S.WAITING, reason)
            kind = "expert_missed_call"
        await outbox.queue(
            conn,
            kind,
            to=row["email"],
            language=row["language"],
            request_id=request_id,
            payload={
                "request_id": request_id,
                "client_alias": row["alias"],
                "reason": reason,
                "attempt": row["attempts"],
            },
        )
    return view


async def interrupted(
    pool: asyncpg.Pool, request_id: int, current: RequestState, *, ended_at: datetime | None = None
) -> RequestView:
    """The engine, not the expert or the client, cut this call before the bridge (a stop, a
    crash): the request goes back to the head of the waiting list, its attempt not counted,
    and its open call attempts are closed as interrupted."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE requests SET attempts = greatest(attempts - 1, 0), priority = true,"
            " next_attempt_at = now(), owner = NULL WHERE id = $1 AND state = $2",
            request_id,
            current.value,
        )
        await conn.execute(
            "UPDATE call_attempts SET outcome = 'interrupted', ended_at = coalesce($2, now())"
            " WHERE request_id = $1 AND ended_at IS NULL",
            request_id,
            ended_at,
        )
        return await move_in(conn, request_id, current, S.WAITING, "engine_interrupted")


async def interruptions(pool: asyncpg.Pool, request_id: int) -> int:
    """How many times the engine cut this request's call before its bridge."""
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM request_events WHERE request_id = $1"
            " AND detail = 'engine_interrupted'",
            request_id,
        )
    )


async def refuse_all(pool: asyncpg.Pool, expert_id: int, proposal: datetime | None) -> int:
    """The expert refuses every waiting client at once: each is refused, offered the
    appointment ``proposal`` and told by email, in one transaction. Returns how many."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "SELECT r.id, r.client_id, c.alias, c.email, c.language, e.alias AS expert"
            " FROM requests r JOIN clients c ON c.id = r.client_id"
            " JOIN experts e ON e.id = r.expert_id"
            " WHERE r.expert_id = $1 AND r.state = 'waiting' ORDER BY r.id FOR UPDATE OF r",
            expert_id,
        )
        for row in rows:
            await move_in(conn, row["id"], S.WAITING, S.REFUSED, "refused_at_closing")
            await conn.execute(
                "INSERT INTO appointment_proposals"
                " (request_id, expert_id, client_id, proposed_start) VALUES ($1,$2,$3,$4)",
                row["id"],
                expert_id,
                row["client_id"],
                proposal,
            )
            await outbox.queue(
                conn,
                "client_request_refused",
                to=row["email"],
                language=row["language"],
                request_id=row["id"],
                payload={
                    "request_id": row["id"],
                    "client_alias": row["alias"],
                    "expert_alias": row["expert"],
                    "proposed_start": proposal.isoformat() if proposal else "",
                },
            )
    return len(rows)


async def move_in(
    conn: asyncpg.Connection,
    request_id: int,
    current: RequestState,
    target: RequestState,
    reason: str,
) -> RequestView:
    """One state move inside the caller's transaction (a Conflict if someone moved first)."""
    check_transition(current, target)
    row = await conn.fetchrow(
        _MOVE_SET,
        request_id,
        current.value,
        target.value,
        target.is_final,
        reason,
    )
    if row is None:
        raise Conflict(f"request {request_id} is no longer {current}")
    await event(conn, request_id, current, target, reason)
    return view_of(row)


async def event(
    conn: asyncpg.Connection,
    request_id: int,
    current: RequestState | None,
    target: RequestState,
    detail: str,
) -> None:
    await conn.execute(
        "INSERT INTO request_events (request_id, from_state, to_state, detail)"
        " VALUES ($1, $2, $3, $4)",
        request_id,
        current.value if current else None,
        target.value,
        detail,
    )


async def client_unreachable(pool: asyncpg.Pool, request_id: int, reason: str) -> RequestView:
    """The expert accepted but the client answered none of IVR_CLIENT_ATTEMPTS calls: the
    request closes as ``client_unreachable`` and the client is emailed (if they gave an
    address), in one transaction."""
    async with pool.acquire() as conn, conn.transaction():
        view = await move_in(conn, request_id, S.RINGING_CLIENT, S.CLIENT_UNREACHABLE, reason)
        client = await conn.fetchrow(
            "SELECT c.alias, c.email, c.language FROM requests r"
            " JOIN clients c ON c.id = r.client_id WHERE r.id = $1",
            request_id,
        )
        if client["email"]:
            await outbox.queue(
                conn,
                "client_request_closed",
                to=client["email"],
                language=client["language"],
                request_id=request_id,
                payload={
                    "request_id": request_id,
                    "client_alias": client["alias"],
                    "reason": "client_unreachable",
                },
            )
    return view
