"""Category requests and their offers: a client asks for a category, the request is offered
to several experts at once (one ``offers`` row each), the first to press 1 wins it.

The win is one compare-and-set on ``requests.expert_id`` (NULL until won), so exactly one
expert gets a request whatever the engines do. An expert is never offered two things at
once, nor offered anything while engaged by a request of their own: the unique index and
the triggers of migration 0015 say so, whatever the engines do. The distribution rule is
written in ``domain/offers.py``.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime

import asyncpg

from ivr_engine.domain.offers import Candidate, FanoutJob
from ivr_engine.domain.requests import RequestState, RequestView
from ivr_engine.errors import Conflict, NotFound
from ivr_engine.store import outbox, planning
from ivr_engine.store.waiting import ACTIVE, event, move_in, view_of

S = RequestState
LIVE = ["waiting", *ACTIVE]

ONE_LIVE_PER_CATEGORY = "requests_one_live_per_client_category"
DEFAULT_CONSULTATION_SECONDS = 600  # the delay estimate's length of a consultation, no history
OUTSIDE_HOURS_RETRY = 60.0  # seconds before a request whose free experts are all closed is
# looked at again


class UnknownCategory(NotFound):
    """No expert taking calls has this category."""


async def create(
    pool: asyncpg.Pool, category: str, client_id: int, expert_language: str | None
) -> RequestView:
    """A client asks for any expert of ``category`` (of ``expert_language`` if given)."""
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval(
            "SELECT 1 FROM experts WHERE category = $1 AND taking_calls"
            " AND ($2::text IS NULL OR language = $2) LIMIT 1",
            category,
            expert_language,
        ):
            raise UnknownCategory(f"no expert takes calls in category {category!r}")
        if not await conn.fetchval("SELECT 1 FROM clients WHERE id = $1", client_id):
            raise NotFound(f"client {client_id} does not exist")
        try:
            row = await conn.fetchrow(
                "INSERT INTO requests (category, expert_language, client_id)"
                " VALUES ($1, $2, $3) RETURNING *",
                category,
                expert_language,
                client_id,
            )
        except asyncpg.UniqueViolationError as err:
            if err.constraint_name != ONE_LIVE_PER_CATEGORY:
                raise
            raise Conflict(f"client {client_id} already waits for {category}") from err
        await event(conn, row["id"], None, S.WAITING, f"created for category {category}")
    return view_of(row)


async def expected_delay(pool: asyncpg.Pool, request_id: int) -> int:
    """Seconds the client may expect to wait (the rule is in the README): 0 when an expert
    could be rung now; else the requests ahead of this one, plus one, times the category's
    average consultation of the last 30 days (600 s without history), shared among the
    category's experts taking calls."""
    row = await pool.fetchrow(_DELAY_SQL, request_id)
    if row is None:
        raise NotFound(f"request {request_id} does not exist")
    if row["free_now"]:
        return 0
    experts: int = row["experts"]
    ahead: int = row["ahead"]
    average = float(row["average"] or DEFAULT_CONSULTATION_SECONDS)
    return math.ceil((ahead + 1) * average / max(1, experts))


async def claim_next(pool: asyncpg.Pool, owner: uuid.UUID | None, fanout: int) -> FanoutJob | None:
    """Take the next due category request that some free expert could take, move it to
    ringing_expert (its expert still NULL) and write an offer row for each of up to
    ``fanout`` experts, chosen by the distribution rule. None: nothing to offer now."""
    async with pool.acquire() as conn:
        for _ in range(5):
            try:
                async with conn.transaction():
                    return await _claim(conn, owner, fanout)
            except asyncpg.UniqueViolationError:
                continue  # an expert was rung by another engine meanwhile: choose again
    return None


async def _claim(
    conn: asyncpg.Connection, owner: uuid.UUID | None, fanout: int
) -> FanoutJob | None:
    now = datetime.now(UTC)
    for due in await conn.fetch(_PICK_SQL):
        # Planning hours are the domain's rule (time zones, overrides): checked here, on the
        # few best candidates by the distribution rule.
        chosen = []
        for e in await conn.fetch(_OFFER_TO_SQL, due["id"], fanout * 3):
            if (await planning.load(conn, e["id"])).at(now).open:
                chosen.append(e)
            if len(chosen) == fanout:
                break
        if chosen:
            row = await conn.fetchrow(_RING_SQL, due["id"], owner)
            return await _offer(conn, row, chosen)
        # Every free expert of the category is outside their hours: look again later (an
        # expert coming back sends NOTIFY; the hours opening is met by this delay).
        await conn.execute(
            "UPDATE requests SET next_attempt_at = now() + make_interval(secs => $2) WHERE id = $1",
            due["id"],
            OUTSIDE_HOURS_RETRY,
        )
    return None


async def _offer(
    conn: asyncpg.Connection, row: asyncpg.Record, experts: list[asyncpg.Record]
) -> FanoutJob:
    candidates = []
    # In expert id order: two claims locking the same experts never wait for each other.
    for e in sorted(experts, key=lambda e: int(e["id"])):
        offer_id = await conn.fetchval(
            "INSERT INTO offers (request_id, expert_id, round) VALUES ($1, $2, $3) RETURNING id",
            row["id"],
            e["id"],
            row["attempts"],
        )
        candidates.append(
            Candidate(
                offer_id=offer_id,
                expert_id=e["id"],
                alias=e["alias"],
                phone=e["phone"],
                email=e["email"],
                language=e["language"],
                rate=e["rate_per_minute"],
                category=e["category"],
                acceptance_ivr=e["acceptance_ivr"],
            )
        )
    order = {e["id"]: n for n, e in enumerate(experts)}  # the rule's order, for the flow
    candidates.sort(key=lambda c: order[c.expert_id])
    await event(
        conn,
        row["id"],
        S.WAITING,
        S.RINGING_EXPERT,
        f"offer {row['attempts']}: experts {','.join(str(c.expert_id) for c in candidates)}",
    )
    return FanoutJob(
        request_id=row["id"],
        round=row["attempts"],
        category=row["category"],
        client_id=row["client_id"],
        client_alias=row["client_alias"],
        client_phone=row["client_phone"],
        client_language=row["client_language"],
        candidates=tuple(candidates),
    )


async def win(pool: asyncpg.Pool, request_id: int, offer_id: int, expert_id: int) -> bool:
    """The expert pressed 1: they get the request if nobody did first (one compare-and-set
    in PostgreSQL, so two engines cannot both win it). False: another expert was quicker,
    or the request moved on (the client left)."""
    async with pool.acquire() as conn:
        try:
            async with conn.transaction():
                won = await conn.fetchval(
                    "UPDATE requests SET expert_id = $2, updated_at = now()"
                    " WHERE id = $1 AND expert_id IS NULL AND state = 'ringing_expert'"
                    " RETURNING id",
                    request_id,
                    expert_id,
                )
                if won is None:
                    return False
                await conn.execute(
                    "UPDATE offers SET state = 'won', ended_at = clock_timestamp() WHERE id = $1",
                    offer_id,
                )
                await event(
                    conn, request_id, S.RINGING_EXPERT, S.RINGING_EXPERT, f"won by {expert_id}"
                )
                return True
        except asyncpg.UniqueViolationError:
            # The client waits in this expert's own list too (one live entry per client and
            # expert): that entry is the one they will be rung for.
            return False


async def check_hand_back(pool: asyncpg.Pool, request_id: int, expert_id: int) -> None:
    """NotFound / Conflict as ``hand_back`` would raise them, changing nothing."""
    state = await pool.fetchval(
        "SELECT state FROM requests WHERE id = $1 AND expert_id = $2 AND category IS NOT NULL",
        request_id,
        expert_id,
    )
    if state is None:
        raise NotFound(f"request {request_id} is not a category request of expert {expert_id}")
    if state != S.RINGING_CLIENT:
        raise Conflict(f"request {request_id} is {state}: it can no longer be handed back")


async def hand_back(
    pool: asyncpg.Pool, request_id: int, expert_id: int, reason: str
) -> RequestView:
    """The expert who won a category request cannot help after all (from the panel, while
    the client is being called): the request goes back to distribution at the head of the
    list, without an expert, and is never offered to this expert again. NotFound: not a
    category request this expert won; Conflict: too late (bridged or ended)."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT state FROM requests WHERE id = $1 AND expert_id = $2"
            " AND category IS NOT NULL FOR UPDATE",
            request_id,
            expert_id,
        )
        if row is None:
            raise NotFound(f"request {request_id} is not a category request of expert {expert_id}")
        if row["state"] != S.RINGING_CLIENT:
            raise Conflict(
                f"request {request_id} is {row['state']}: it can no longer be handed back"
            )
        await conn.execute(
            "UPDATE offers SET state = 'handed_back', reason = $3, ended_at = clock_timestamp()"
            " WHERE request_id = $1 AND expert_id = $2 AND state = 'won'",
            request_id,
            expert_id,
            reason,
        )
        await conn.execute(
            "UPDATE requests SET expert_id = NULL, owner = NULL, priority = true,"
            " next_attempt_at = now() WHERE id = $1",
            request_id,
        )
        return await move_in(
            conn, request_id, S.RINGING_CLIENT, S.WAITING, f"handed_back: {reason}"
        )


async def end_offer(pool: asyncpg.Pool, offer_id: int, state: str, reason: str = "") -> None:
    """An offer is over for its expert (their phone is hung up): taken, refused, no_answer
    or released. An offer already ended keeps its first outcome."""
    await pool.execute(
        "UPDATE offers SET state = $2, reason = $3, ended_at = clock_timestamp()"
        " WHERE id = $1 AND state = 'ringing'",
        offer_id,
        state,
        reason,
    )


async def missed(pool: asyncpg.Pool, expert_id: int, retry_delay: float) -> None:
    """An offered expert did not answer or chose nothing: not rung for another offer (or
    their own list) for ``retry_delay`` seconds, as after any missed call; no email, the
    request was never theirs."""
    await pool.execute(
        "UPDATE experts SET unreachable_until = now() + make_interval(secs => $2) WHERE id = $1",
        expert_id,
        retry_delay,
    )


async def nobody_took(pool: asyncpg.Pool, request_id: int) -> RequestView:
    """Every offer of this round ended without a winner: the request waits for the next
    round (experts who refused are not offered it again), or, when no expert of the category
    is left who has not refused it, it is ``refused`` (``all_refused``) and the client told."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT r.state, r.category, r.expert_language, c.alias, c.email, c.language"
            " FROM requests r JOIN clients c ON c.id = r.client_id"
            " WHERE r.id = $1 FOR UPDATE OF r",
            request_id,
        )
        if row is None:
            raise NotFound(f"request {request_id} does not exist")
        current = RequestState(row["state"])
        left = await conn.fetchval(
            "SELECT count(*) FROM experts e WHERE e.category = $2 AND e.taking_calls"
            " AND ($3::text IS NULL OR e.language = $3)"
            " AND NOT EXISTS (SELECT 1 FROM offers o WHERE o.request_id = $1"
            "                 AND o.expert_id = e.id AND o.state IN ('refused', 'handed_back'))",
            request_id,
            row["category"],
            row["expert_language"],
        )
        if left:
            await conn.execute(
                "UPDATE requests SET owner = NULL, next_attempt_at = now() WHERE id = $1",
                request_id,
            )
            return await move_in(conn, request_id, current, S.WAITING, "nobody_took_it")
        view = await move_in(conn, request_id, current, S.REFUSED, "all_refused")
        await _tell_client(conn, request_id, row, "client_request_closed", "all_refused")
        return view


async def next_due(pool: asyncpg.Pool) -> datetime | None:
    """When the earliest waiting category request becomes due (an expert becoming free is
    announced by NOTIFY; a pause or unreachable mark ending is met by the idle poll)."""
    return await pool.fetchval(NEXT_DUE_SQL)  # type: ignore[no-any-return]


async def of_request(pool: asyncpg.Pool, request_id: int) -> list[asyncpg.Record]:
    """Who was offered a category request, when, and what became of each offer."""
    return list(
        await pool.fetch(
            "SELECT o.id, o.expert_id, e.alias AS expert_alias, o.round, o.state, o.reason,"
            " o.offered_at, o.ended_at FROM offers o JOIN experts e ON e.id = o.expert_id"
            " WHERE o.request_id = $1 ORDER BY o.id",
            request_id,
        )
    )


async def of_expert(pool: asyncpg.Pool, expert_id: int, limit: int = 10) -> list[asyncpg.Record]:
    """The category requests last offered to an expert, newest first (their panel)."""
    return list(
        await pool.fetch(
            "SELECT o.id, o.request_id, r.category, k.id AS client_id, k.alias AS client_alias,"
            " o.state, o.offered_at, r.state AS request_state"
            " FROM offers o JOIN requests r ON r.id = o.request_id"
            " JOIN clients k ON k.id = r.client_id WHERE o.expert_id = $1"
            " ORDER BY o.id DESC LIMIT $2",
            expert_id,
            limit,
        )
    )


async def recent(pool: asyncpg.Pool, limit: int = 20) -> list[asyncpg.Record]:
    """The newest category requests (for the staff): their state, who took each, and who
    was offered it with the outcome of each offer (``offered``: alias/state pairs, oldest
    first)."""
    return list(
        await pool.fetch(
            "SELECT r.id, r.category, r.state, r.end_reason, r.created_at,"
            " k.alias AS client_alias, w.alias AS taken_by,"
            " coalesce((SELECT array_agg(e.alias || ': ' || o.state ORDER BY o.id)"
            "           FROM offers o JOIN experts e ON e.id = o.expert_id"
            "           WHERE o.request_id = r.id), '{}') AS offered"
            " FROM requests r JOIN clients k ON k.id = r.client_id"
            " LEFT JOIN experts w ON w.id = r.expert_id"
            " WHERE r.category IS NOT NULL ORDER BY r.id DESC LIMIT $1",
            limit,
        )
    )


async def _tell_client(
    conn: asyncpg.Connection, request_id: int, row: asyncpg.Record, kind: str, reason: str
) -> None:
    if not row["email"]:
        return  # the client gave no address: the API's GET shows the reason
    await outbox.queue(
        conn,
        kind,
        to=row["email"],
        language=row["language"],
        request_id=request_id,
        payload={"request_id": request_id, "client_alias": row["alias"], "reason": reason},
    )


# The experts a category request may be offered to now, by the distribution rule. The state
# lists are written as the partial unique indexes' own predicates (0001, 0010), so that each
# NOT EXISTS is one probe of that index: as a parameter, or as "waiting OR active", PostgreSQL
# could not use them and read every live request for each expert (0.7 s per dispatcher pass
# with 200 category requests and 10,000 experts).
_IN_ACTIVE = "(" + ", ".join(f"'{state}'" for state in ACTIVE) + ")"
_IN_LIVE = "(" + ", ".join(f"'{state}'" for state in LIVE) + ")"
_ELIGIBLE_SQL = """
    SELECT e.id, e.alias, e.phone, e.email, e.language, e.rate_per_minute, e.category,
           e.acceptance_ivr
    FROM requests r JOIN experts e ON e.category = r.category
    WHERE r.id = {request} AND e.taking_calls AND e.channel_phone
      AND (r.expert_language IS NULL OR e.language = r.expert_language)
      AND coalesce(e.paused_until, '-infinity') <= now()
      AND coalesce(e.unreachable_until, '-infinity') <= now()
      AND NOT EXISTS (SELECT 1 FROM requests a WHERE a.expert_id = e.id
                      AND a.state IN {active})
      AND NOT EXISTS (SELECT 1 FROM offers o WHERE o.expert_id = e.id AND o.state = 'ringing')
      AND NOT EXISTS (SELECT 1 FROM line_tests t  -- a line test rings the expert (0014)
                      WHERE t.expert_id = e.id AND t.result IS NULL)
      AND NOT EXISTS (SELECT 1 FROM offers o WHERE o.request_id = r.id AND o.expert_id = e.id
                      AND o.state IN ('refused', 'handed_back'))
      AND NOT EXISTS (SELECT 1 FROM requests p WHERE p.expert_id = e.id
                      AND p.client_id = r.client_id
                      AND p.state IN {live})
"""


def _eligible(request: str) -> str:
    return _ELIGIBLE_SQL.format(request=request, active=_IN_ACTIVE, live=_IN_LIVE)


_RULE = """
    (SELECT count(*) FROM consultations c WHERE c.expert_id = e.id
     AND c.bridge_start >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'),
    greatest((SELECT max(c.bridge_end) FROM consultations c WHERE c.expert_id = e.id),
             (SELECT max(o.ended_at) FROM offers o WHERE o.expert_id = e.id)) NULLS FIRST,
    e.id
"""

_OFFER_TO_SQL = f"{_eligible('$1')} ORDER BY {_RULE} LIMIT $2"

# Due category requests some free expert could take, oldest first (a request put back by
# an engine stop first of all), locked for this claim. The LIMIT keeps the test one request at
# a time, as in NEXT_DUE_SQL (without it PostgreSQL sorted every request to join them at once).
_PICK_SQL = f"""
SELECT w.id FROM requests w
WHERE w.state = 'waiting' AND w.expert_id IS NULL AND w.next_attempt_at <= now()
  AND EXISTS (SELECT 1 FROM ({_eligible("w.id")} LIMIT 1) free)
ORDER BY w.priority DESC, w.id
LIMIT 10
FOR UPDATE OF w SKIP LOCKED
"""

_RING_SQL = """
UPDATE requests r SET state = 'ringing_expert', attempts = r.attempts + 1, updated_at = now(),
                      owner = $2, priority = false
FROM clients c
WHERE r.id = $1 AND c.id = r.client_id AND r.state = 'waiting'
RETURNING r.id, r.attempts, r.category, r.client_id, c.alias AS client_alias,
          c.phone AS client_phone, c.language AS client_language
"""


# When the earliest waiting category request some free expert could take is due (also a part
# of the dispatcher's one due-time statement, store/wake.py). The LIMIT keeps the test one
# request at a time (stopping at the first expert who could take it): without it PostgreSQL
# joined every waiting category request with every expert of its category at once (7 s with
# 200 category requests and 10,000 experts).
NEXT_DUE_SQL = f"""
SELECT min(w.next_attempt_at) FROM requests w
WHERE w.state = 'waiting' AND w.expert_id IS NULL
  AND EXISTS (SELECT 1 FROM ({_eligible("w.id")}
                             LIMIT 1) free)
"""

_DELAY_SQL = f"""
SELECT
    EXISTS (SELECT 1 FROM ({_eligible("$1")}) free) AS free_now,
    (SELECT count(*) FROM requests w, requests r0 WHERE r0.id = $1 AND w.state = 'waiting'
     AND w.expert_id IS NULL AND w.category = r0.category AND w.id < r0.id) AS ahead,
    (SELECT count(*) FROM experts e, requests r0 WHERE r0.id = $1 AND e.category = r0.category
     AND e.taking_calls) AS experts,
    (SELECT avg(c.billed_seconds) FROM consultations c, requests r0 WHERE r0.id = $1
     AND c.category = r0.category AND c.bridge_end > now() - interval '30 days') AS average
"""
