"""Queries on experts, clients, waiting-list entries, call attempts and consultations.

Every state change is one transaction that checks the move against the domain rules,
updates the row only if it is still in the state the caller saw, and appends to
``request_events``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from ivr_engine.domain.billing import billed_seconds
from ivr_engine.domain.money import Tariff
from ivr_engine.domain.requests import RequestState, can_leave, check_transition
from ivr_engine.errors import Conflict, NotFound
from ivr_engine.store import consultations, outbox

S = RequestState
ACTIVE = [s.value for s in (S.RINGING_EXPERT, S.RINGING_CLIENT, S.CONNECTED)]


@dataclass(frozen=True)
class Job:
    """A claimed request with what its flow needs to know."""

    request_id: int
    attempt_no: int
    expert_id: int
    expert_alias: str
    expert_phone: str
    expert_email: str
    expert_language: str
    rate: Decimal
    category: str
    acceptance_ivr: bool
    client_id: int
    client_alias: str
    client_phone: str
    client_language: str


@dataclass(frozen=True)
class RequestView:
    id: int
    expert_id: int
    client_id: int
    state: RequestState
    attempts: int
    next_attempt_at: datetime
    end_reason: str
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "expert_id": self.expert_id,
            "client_id": self.client_id,
            "state": self.state.value,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at.isoformat(),
            "end_reason": self.end_reason,
            "created_at": self.created_at.isoformat(),
        }


def _view(row: asyncpg.Record) -> RequestView:
    return RequestView(
        id=row["id"],
        expert_id=row["expert_id"],
        client_id=row["client_id"],
        state=RequestState(row["state"]),
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        end_reason=row["end_reason"],
        created_at=row["created_at"],
    )


class RequestStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # -- people --------------------------------------------------------------------------
    async def create_expert(
        self,
        *,
        alias: str,
        phone: str,
        rate: Decimal,
        email: str = "",
        language: str = "en",
        acceptance_ivr: bool = True,
        taking_calls: bool = True,
        category: str = "general",
    ) -> int:
        return int(
            await self.pool.fetchval(
                "INSERT INTO experts (alias, phone, rate_per_minute, email, language,"
                " acceptance_ivr, taking_calls, category) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)"
                " RETURNING id",
                alias,
                phone,
                rate,
                email,
                language,
                acceptance_ivr,
                taking_calls,
                category,
            )
        )

    async def client_by_phone(
        self, phone: str, *, alias: str = "", language: str = "en", email: str = ""
    ) -> int:
        """The client with this phone, created on first contact."""
        return int(
            await self.pool.fetchval(
                "INSERT INTO clients (alias, phone, language, email) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (phone) DO UPDATE SET"
                " alias = CASE WHEN $1 = '' THEN clients.alias ELSE $1 END,"
                " email = CASE WHEN $4 = '' THEN clients.email ELSE $4 END RETURNING id",
                alias or phone[-4:],
                phone,
                language,
                email,
            )
        )

    async def refuse_all_waiting(self, expert_id: int, proposal: datetime | None) -> int:
        """The expert refuses every waiting client at once: each is refused, offered the
        appointment ``proposal`` and told by email, in one transaction. Returns how many."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT r.id, r.client_id, c.alias, c.email, c.language, e.alias AS expert"
                " FROM requests r JOIN clients c ON c.id = r.client_id"
                " JOIN experts e ON e.id = r.expert_id"
                " WHERE r.expert_id = $1 AND r.state = 'waiting' ORDER BY r.id FOR UPDATE OF r",
                expert_id,
            )
            for row in rows:
                await self._move(conn, row["id"], S.WAITING, S.REFUSED, "refused_at_closing")
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

    # -- the waiting list ----------------------------------------------------------------
    async def create_request(self, expert_id: int, client_id: int) -> RequestView:
        async with self.pool.acquire() as conn, conn.transaction():
            expert = await conn.fetchrow(
                "SELECT taking_calls FROM experts WHERE id = $1 FOR SHARE", expert_id
            )
            if expert is None:
                raise NotFound(f"expert {expert_id} does not exist")
            if not expert["taking_calls"]:
                raise Conflict(f"expert {expert_id} is not taking calls")
            if not await conn.fetchval("SELECT 1 FROM clients WHERE id = $1", client_id):
                raise NotFound(f"client {client_id} does not exist")
            dup = await conn.fetchval(
                "SELECT id FROM requests WHERE expert_id = $1 AND client_id = $2"
                " AND state = ANY($3::text[])",
                expert_id,
                client_id,
                ["waiting", *ACTIVE],
            )
            if dup:
                raise Conflict(f"client {client_id} is already in this list (request {dup})")
            row = await conn.fetchrow(
                "INSERT INTO requests (expert_id, client_id) VALUES ($1, $2) RETURNING *",
                expert_id,
                client_id,
            )
            await self._event(conn, row["id"], None, S.WAITING, "created")
        return _view(row)

    async def get(self, request_id: int) -> RequestView:
        row = await self.pool.fetchrow("SELECT * FROM requests WHERE id = $1", request_id)
        if row is None:
            raise NotFound(f"request {request_id} does not exist")
        return _view(row)

    async def leave(self, request_id: int) -> RequestView:
        """The client leaves the waiting list: the request is recorded as lost."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT state FROM requests WHERE id = $1 FOR UPDATE", request_id
            )
            if row is None:
                raise NotFound(f"request {request_id} does not exist")
            state = RequestState(row["state"])
            if not can_leave(state):
                raise Conflict(f"request {request_id} is {state}: it can no longer be left")
            return await self._move(conn, request_id, state, S.LOST, "client_left")

    async def solicit(self, request_id: int) -> RequestView:
        """The expert asks to be called now for a client still in the waiting list."""
        async with self.pool.acquire() as conn, conn.transaction():
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
            await self._event(conn, request_id, S.WAITING, S.WAITING, "solicited")
        return _view(updated)

    async def claim_next(self) -> Job | None:
        """Take the next due request whose expert is free, moving it to ringing_expert.

        The partial unique index on active requests makes a concurrent claim for the same
        expert fail instead of ringing the expert twice.
        """
        async with self.pool.acquire() as conn:
            for _ in range(5):
                try:
                    async with conn.transaction():
                        row = await conn.fetchrow(_CLAIM_SQL, ACTIVE)
                        if row is None:
                            return None
                        await self._event(
                            conn,
                            row["id"],
                            S.WAITING,
                            S.RINGING_EXPERT,
                            f"attempt {row['attempts']}",
                        )
                        return _job(row)
                except asyncpg.UniqueViolationError:
                    continue  # another engine claimed for this expert first
        return None

    async def next_due(self) -> datetime | None:
        return await self.pool.fetchval(_NEXT_DUE_SQL, ACTIVE)  # type: ignore[no-any-return]

    async def move(
        self, request_id: int, current: RequestState, target: RequestState, reason: str = ""
    ) -> RequestView:
        async with self.pool.acquire() as conn, conn.transaction():
            return await self._move(conn, request_id, current, target, reason)

    async def missed(
        self, request_id: int, *, retry_delay: float, max_attempts: int, reason: str
    ) -> RequestView:
        """The expert did not take the call: retry later, or lose the request."""
        async with self.pool.acquire() as conn, conn.transaction():
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
                view = await self._move(conn, request_id, current, S.LOST, "expert_unreachable")
                kind = "expert_missed_request_lost"
            else:
                view = await self._move(conn, request_id, current, S.WAITING, reason)
                await conn.execute(
                    "UPDATE requests SET next_attempt_at = now() + make_interval(secs => $2)"
                    " WHERE id = $1",
                    request_id,
                    retry_delay,
                )
                await conn.execute(
                    "UPDATE experts SET unreachable_until = now() + make_interval(secs => $2)"
                    " WHERE id = $1",
                    row["expert_id"],
                    retry_delay,
                )
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
        return await self.get(view.id) if view.state is S.WAITING else view

    async def _move(
        self,
        conn: asyncpg.Connection,
        request_id: int,
        current: RequestState,
        target: RequestState,
        reason: str,
    ) -> RequestView:
        check_transition(current, target)
        row = await conn.fetchrow(
            "UPDATE requests SET state = $3, updated_at = now(),"
            " end_reason = CASE WHEN $4 THEN $5 ELSE end_reason END,"
            " ended_at = CASE WHEN $4 THEN now() ELSE NULL END"
            " WHERE id = $1 AND state = $2 RETURNING *",
            request_id,
            current.value,
            target.value,
            target.is_final,
            reason,
        )
        if row is None:
            raise Conflict(f"request {request_id} is no longer {current}")
        await self._event(conn, request_id, current, target, reason)
        return _view(row)

    @staticmethod
    async def _event(
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

    # -- call attempts -----------------------------------------------------------------
    async def new_attempt(
        self, request_id: int, *, leg: str, purpose: str, dial_string: str
    ) -> str:
        """Record the intent to dial before dialling; returns the channel id to use."""
        return str(
            await self.pool.fetchval(
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

    async def attempt_answered(self, channel_id: str, at: datetime) -> None:
        await self.pool.execute(
            "UPDATE call_attempts SET answered_at = $2, outcome = 'answered' WHERE channel_id = $1",
            channel_id,
            at,
        )

    async def attempt_ended(
        self,
        channel_id: str,
        *,
        outcome: str,
        ended_at: datetime | None,
        cause: int | None,
        cause_text: str,
        dtmf: str = "",
        choice: str | None = None,
    ) -> None:
        await self.pool.execute(
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

    # -- consultations -----------------------------------------------------------------
    async def open_consultation(
        self,
        job: Job,
        tariff: Tariff,
        *,
        bridge_id: str,
        expert_channel: str,
        client_channel: str,
        start: datetime,
    ) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            consultation_id = await consultations.insert(
                conn,
                job,
                tariff,
                bridge_id=bridge_id,
                expert_channel=expert_channel,
                client_channel=client_channel,
                start=start,
            )
            await self._move(conn, job.request_id, S.RINGING_CLIENT, S.CONNECTED, "bridged")
        return consultation_id

    async def close_consultation(
        self, request_id: int, *, end: datetime, billed_seconds: int, ended_by: str
    ) -> None:
        """Bill it, queue the earnings email, complete the request: one transaction."""
        async with self.pool.acquire() as conn, conn.transaction():
            await consultations.close(
                conn, request_id, end=end, billed_seconds=billed_seconds, ended_by=ended_by
            )
            await self._move(conn, request_id, S.CONNECTED, S.COMPLETED, f"ended by {ended_by}")

    async def close_connected_now(self, request_id: int, *, ended_by: str) -> None:
        """End a consultation whose bridge the engine can no longer watch, billing until now."""
        start = await self.pool.fetchval(
            "SELECT bridge_start FROM consultations WHERE request_id = $1 AND bridge_end IS NULL",
            request_id,
        )
        end = datetime.now(UTC)
        seconds = billed_seconds(start, end) if start is not None else 0
        await self.close_consultation(
            request_id, end=end, billed_seconds=seconds, ended_by=ended_by
        )

    async def orphans(self, owned: set[int]) -> list[tuple[int, RequestState, list[str]]]:
        """Active requests no flow of this engine owns, with the channel ids they dialled."""
        rows = await self.pool.fetch(
            "SELECT r.id, r.state, coalesce(array_agg(a.channel_id)"
            " FILTER (WHERE a.channel_id IS NOT NULL), '{}') AS channels"
            " FROM requests r LEFT JOIN call_attempts a ON a.request_id = r.id"
            " WHERE r.state = ANY($1::text[]) AND NOT (r.id = ANY($2::bigint[]))"
            " GROUP BY r.id, r.state",
            ACTIVE,
            list(owned),
        )
        return [(r["id"], RequestState(r["state"]), list(r["channels"])) for r in rows]


def _job(row: asyncpg.Record) -> Job:
    return Job(
        request_id=row["id"],
        attempt_no=row["attempts"],
        expert_id=row["expert_id"],
        expert_alias=row["expert_alias"],
        expert_phone=row["expert_phone"],
        expert_email=row["expert_email"],
        expert_language=row["expert_language"],
        rate=row["rate_per_minute"],
        category=row["category"],
        acceptance_ivr=row["acceptance_ivr"],
        client_id=row["client_id"],
        client_alias=row["client_alias"],
        client_phone=row["client_phone"],
        client_language=row["client_language"],
    )


# Waiting requests whose expert is not engaged by another request and takes phone calls.
# Opening hours do not gate this: clients who joined before closing time are still served.
_FREE = """
    FROM requests w JOIN experts e ON e.id = w.expert_id
    WHERE w.state = 'waiting' AND e.channel_phone
      AND NOT EXISTS (SELECT 1 FROM requests a
                      WHERE a.expert_id = w.expert_id AND a.state = ANY($1::text[]))
"""
# A request is due at its own next attempt, but not while its expert is marked unreachable
# after a missed call (a solicit clears that mark), nor while the expert is paused.
_DUE_AT = (
    "greatest(w.next_attempt_at, coalesce(e.unreachable_until, w.next_attempt_at),"
    " coalesce(e.paused_until, w.next_attempt_at))"
)

_NEXT_DUE_SQL = f"SELECT min({_DUE_AT}) {_FREE}"

_CLAIM_SQL = f"""
WITH picked AS (
    SELECT w.id {_FREE} AND {_DUE_AT} <= now()
    ORDER BY w.next_attempt_at, w.id
    LIMIT 1
    FOR UPDATE OF w SKIP LOCKED
)
UPDATE requests r SET state = 'ringing_expert', attempts = r.attempts + 1, updated_at = now()
FROM picked, experts e, clients c
WHERE r.id = picked.id AND e.id = r.expert_id AND c.id = r.client_id
RETURNING r.id, r.attempts, r.expert_id, e.alias AS expert_alias, e.phone AS expert_phone,
          e.email AS expert_email, e.language AS expert_language, e.rate_per_minute, e.category,
          e.acceptance_ivr, r.client_id, c.alias AS client_alias, c.phone AS client_phone,
          c.language AS client_language
"""
