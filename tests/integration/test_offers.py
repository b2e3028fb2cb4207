"""Category requests on a real PostgreSQL (migration 0015, store/offers.py, store/expiry.py):
exactly one winner under concurrency, even from two engines' pools; an expert never offered
two things at once nor offered while engaged; the distribution rule; what happens when
nobody takes a request; expiry for both kinds of request."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from ivr_engine.errors import Conflict, NotFound
from ivr_engine.store import claims, expiry, offers, people, planning, reports, waiting

pytestmark = pytest.mark.integration


async def _expert(pool: asyncpg.Pool, n: int, category: str = "cartomancy", **kw: str) -> int:
    return await people.create_expert(
        pool,
        alias=f"E{n}",
        phone=f"+3906000001{n:02d}",
        rate=Decimal("1.50"),
        category=category,
        email=f"e{n}@example.org",
        **kw,  # type: ignore[arg-type]
    )


async def _client(pool: asyncpg.Pool, n: int = 1) -> int:
    return await people.client_by_phone(
        pool, f"+3933300002{n:02d}", alias=f"C{n}", email=f"c{n}@example.org"
    )


@pytest.fixture
async def second_pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """Another engine's connections to the same database."""
    other = await asyncpg.create_pool(dsn, min_size=4, max_size=8)
    try:
        yield other
    finally:
        await other.close()


async def test_a_category_request_is_offered_to_the_fanout_first_by_the_rule(
    pool: asyncpg.Pool,
) -> None:
    experts = [await _expert(pool, n) for n in range(1, 6)]
    await _expert(pool, 9, category="law")
    # E1 had a consultation today, E2 ended an offer a minute ago, E3 one an hour ago;
    # E4 and E5 never worked (longest idle: first, lowest id first).
    other = await _client(pool, 9)
    done = await waiting.create(pool, experts[0], other)
    await pool.execute("UPDATE requests SET state = 'completed' WHERE id = $1", done.id)
    await pool.execute(
        "INSERT INTO consultations (request_id, expert_id, client_id, bridge_id,"
        " expert_channel_id, client_channel_id, rate_per_minute, bridge_start, bridge_end)"
        " VALUES ($1, $2, $3, 'b', 'x', 'y', 1.5, now(), now())",
        done.id,
        experts[0],
        other,
    )
    old = await offers.create(pool, "cartomancy", await _client(pool, 8), None)
    for expert, ago in ((experts[1], 60), (experts[2], 3600)):
        await pool.execute(
            "INSERT INTO offers (request_id, expert_id, round, state, ended_at)"
            " VALUES ($1, $2, 1, 'no_answer', now() - make_interval(secs => $3))",
            old.id,
            expert,
            ago,
        )
    await pool.execute("UPDATE requests SET state = 'lost' WHERE id = $1", old.id)

    view = await offers.create(pool, "cartomancy", await _client(pool), None)
    assert (view.expert_id, view.category, view.state.value) == (None, "cartomancy", "waiting")
    job = await offers.claim_next(pool, None, 3)
    assert job is not None and job.request_id == view.id and job.round == 1
    assert [c.expert_id for c in job.candidates] == [experts[3], experts[4], experts[2]]
    assert await offers.claim_next(pool, None, 3) is None  # nothing else waits
    rows = await offers.of_request(pool, view.id)
    assert sorted(r["expert_id"] for r in rows) == sorted([experts[2], experts[3], experts[4]])
    assert {r["state"] for r in rows} == {"ringing"}


async def test_bad_input_unknown_category_unknown_client_and_duplicate(pool: asyncpg.Pool) -> None:
    await _expert(pool, 1)
    client = await _client(pool)
    with pytest.raises(offers.UnknownCategory):
        await offers.create(pool, "astrology", client, None)
    with pytest.raises(offers.UnknownCategory):  # no cartomancy expert speaks Italian
        await offers.create(pool, "cartomancy", client, "it")
    with pytest.raises(NotFound):
        await offers.create(pool, "cartomancy", 999_999, None)
    await offers.create(pool, "cartomancy", client, None)
    with pytest.raises(Conflict):
        await offers.create(pool, "cartomancy", client, None)
    assert await pool.fetchval("SELECT count(*) FROM requests") == 1


async def test_exactly_one_winner_among_concurrent_presses_from_two_engines(
    pool: asyncpg.Pool, second_pool: asyncpg.Pool
) -> None:
    experts = [await _expert(pool, n) for n in range(1, 4)]
    for round_ in range(5):  # a few rounds: the race must be won once every time
        view = await offers.create(pool, "cartomancy", await _client(pool, round_), None)
        job = await offers.claim_next(pool, None, 3)
        assert job is not None and len(job.candidates) == 3
        # Open the connections first so the presses really run side by side.
        await asyncio.gather(
            *(p.execute("SELECT 1") for p in (pool, second_pool) for _ in range(3))
        )
        presses = [
            offers.win(p, view.id, c.offer_id, c.expert_id)
            for c in job.candidates
            for p in (pool, second_pool)
        ]
        outcomes = await asyncio.gather(*presses)
        assert outcomes.count(True) == 1, outcomes
        winner = await pool.fetchval("SELECT expert_id FROM requests WHERE id = $1", view.id)
        assert winner in experts
        won = await pool.fetch(
            "SELECT expert_id FROM offers WHERE request_id = $1 AND state = 'won'", view.id
        )
        assert [r["expert_id"] for r in won] == [winner]
        # The call goes on and ends: every offer is over, the experts are free again.
        await waiting.move(pool, view.id, offers.S.RINGING_EXPERT, offers.S.RINGING_CLIENT)
        await waiting.move(pool, view.id, offers.S.RINGING_CLIENT, offers.S.CLIENT_UNREACHABLE)
        assert await pool.fetchval("SELECT count(*) FROM offers WHERE state = 'ringing'") == 0


async def test_an_expert_is_never_offered_twice_nor_while_engaged(
    pool: asyncpg.Pool, second_pool: asyncpg.Pool
) -> None:
    expert = await _expert(pool, 1)
    # Two category requests and a request of the expert's own list, claimed concurrently by
    # two engines: the expert's phone is engaged by exactly one of them.
    a = await offers.create(pool, "cartomancy", await _client(pool, 1), None)
    b = await offers.create(pool, "cartomancy", await _client(pool, 2), None)
    own = await waiting.create(pool, expert, await _client(pool, 3))
    await asyncio.gather(*(p.execute("SELECT 1") for p in (pool, second_pool) for _ in range(3)))
    outcomes = await asyncio.gather(
        offers.claim_next(pool, None, 3),
        offers.claim_next(second_pool, None, 3),
        claims.claim_next(pool),
        claims.claim_next(second_pool),
    )
    taken = [o for o in outcomes if o is not None]
    assert len(taken) == 1, outcomes
    engaged = await pool.fetchval(
        "SELECT (SELECT count(*) FROM offers WHERE state = 'ringing')"
        " + (SELECT count(*) FROM requests WHERE state = 'ringing_expert' AND expert_id = $1)",
        expert,
    )
    assert engaged == 1
    states = {
        r["id"]: r["state"]
        for r in await pool.fetch(
            "SELECT id, state FROM requests WHERE id = ANY($1)", [a.id, b.id, own.id]
        )
    }
    assert sorted(states.values()) == ["ringing_expert", "waiting", "waiting"]


async def test_the_guard_refuses_ringing_an_offered_expert_for_their_own_list(
    pool: asyncpg.Pool,
) -> None:
    expert = await _expert(pool, 1)
    await offers.create(pool, "cartomancy", await _client(pool, 1), None)
    assert await offers.claim_next(pool, None, 3) is not None
    own = await waiting.create(pool, expert, await _client(pool, 2))
    assert await claims.claim_next(pool) is None  # the claim skips an offered expert
    with pytest.raises(asyncpg.UniqueViolationError):  # and PostgreSQL refuses it anyway
        await pool.execute("UPDATE requests SET state = 'ringing_expert' WHERE id = $1", own.id)


async def test_nobody_took_it_waits_then_all_refused_closes_and_emails(pool: asyncpg.Pool) -> None:
    e1, e2 = await _expert(pool, 1), await _expert(pool, 2)
    view = await offers.create(pool, "cartomancy", await _client(pool), None)
    job = await offers.claim_next(pool, None, 3)
    assert job is not None
    first, second = job.candidates
    await offers.end_offer(pool, first.offer_id, "refused")
    await offers.end_offer(pool, second.offer_id, "no_answer", "no_answer")
    await offers.missed(pool, second.expert_id, 300)
    after = await offers.nobody_took(pool, view.id)
    assert (after.state.value, after.expert_id) == ("waiting", None)
    # The refuser is never offered it again, the one who missed not for retry_delay.
    assert await offers.claim_next(pool, None, 3) is None
    await pool.execute("UPDATE experts SET unreachable_until = NULL")
    job = await offers.claim_next(pool, None, 3)
    assert job is not None and [c.expert_id for c in job.candidates] == [second.expert_id]
    await offers.end_offer(pool, job.candidates[0].offer_id, "refused")
    closed = await offers.nobody_took(pool, view.id)
    assert (closed.state.value, closed.end_reason) == ("refused", "all_refused")
    mails = await pool.fetch("SELECT kind, to_address, payload FROM outbox_emails")
    assert [(m["kind"], m["to_address"]) for m in mails] == [
        ("client_request_closed", "c1@example.org")
    ]
    assert {e1, e2} == {first.expert_id, second.expert_id}


async def test_requests_expire_after_the_ttl_with_an_email(pool: asyncpg.Pool) -> None:
    expert = await _expert(pool, 1)
    own = await waiting.create(pool, expert, await _client(pool, 1))
    cat = await offers.create(pool, "cartomancy", await _client(pool, 2), None)
    fresh = await waiting.create(pool, expert, await _client(pool, 3))
    await pool.execute(
        "UPDATE requests SET created_at = now() - interval '13 hours' WHERE id = ANY($1)",
        [own.id, cat.id],
    )
    due = await expiry.next_expiry(pool, 12)
    assert due is not None
    assert sorted(await expiry.expire(pool, 12)) == sorted([own.id, cat.id])
    assert await expiry.expire(pool, 12) == []
    for request_id in (own.id, cat.id):
        row = await pool.fetchrow(
            "SELECT state, end_reason FROM requests WHERE id = $1", request_id
        )
        assert (row["state"], row["end_reason"]) == ("lost", "expired")
    assert (await waiting.get(pool, fresh.id)).state.value == "waiting"
    kinds = await pool.fetch("SELECT kind, request_id FROM outbox_emails ORDER BY request_id")
    assert [(k["kind"], k["request_id"]) for k in kinds] == [
        ("client_request_closed", own.id),
        ("client_request_closed", cat.id),
    ]
    payloads = await pool.fetch("SELECT payload FROM outbox_emails ORDER BY request_id")
    said = [json.loads(p["payload"]) for p in payloads]
    assert said[0]["request_id"] == own.id and said[0]["reason"] == "expired"
    assert said[0]["expert_alias"] != "" and said[0]["category"] == ""
    assert said[1]["expert_alias"] == "" and said[1]["category"] == "cartomancy"
    assert all(p["client_alias"] for p in said)
    events = await pool.fetch(
        "SELECT from_state, to_state, detail FROM request_events WHERE request_id = $1 ORDER BY id",
        own.id,
    )
    assert tuple(events[-1]) == ("waiting", "lost", "expired")


async def test_expected_delay(pool: asyncpg.Pool) -> None:
    e1 = await _expert(pool, 1)
    first = await offers.create(pool, "cartomancy", await _client(pool, 1), None)
    assert await offers.expected_delay(pool, first.id) == 0
    await pool.execute("UPDATE experts SET paused_until = now() + interval '1 hour'")
    second = await offers.create(pool, "cartomancy", await _client(pool, 2), None)
    # Nobody free: one request ahead, 600 s each without history, one expert.
    assert await offers.expected_delay(pool, second.id) == 1200
    assert await offers.next_due(pool) is None  # nobody could take them: no wake-up timer
    assert e1


async def test_the_operator_list_shows_category_requests(pool: asyncpg.Pool) -> None:
    await _expert(pool, 1)
    view = await offers.create(pool, "cartomancy", await _client(pool), None)
    (row,) = await reports.requests(pool, states=["waiting"])
    assert (row.id, row.expert_id, row.expert_alias) == (view.id, None, "category cartomancy")


async def test_hand_back_only_by_the_winner_and_only_while_the_client_is_called(
    pool: asyncpg.Pool,
) -> None:
    e1, e2 = await _expert(pool, 1), await _expert(pool, 2)
    own = await waiting.create(pool, e2, await _client(pool, 9))
    view = await offers.create(pool, "cartomancy", await _client(pool), None)
    with pytest.raises(NotFound):  # nobody won it yet
        await offers.check_hand_back(pool, view.id, e1)
    with pytest.raises(NotFound):  # not a category request
        await offers.check_hand_back(pool, own.id, e2)
    job = await offers.claim_next(pool, None, 3)
    assert job is not None
    won = next(c for c in job.candidates if c.expert_id == e1)
    assert await offers.win(pool, view.id, won.offer_id, e1)
    with pytest.raises(Conflict):  # still ringing_expert: the key was just pressed
        await offers.hand_back(pool, view.id, e1, "x")
    await waiting.move(pool, view.id, offers.S.RINGING_EXPERT, offers.S.RINGING_CLIENT)
    with pytest.raises(NotFound):  # not theirs
        await offers.hand_back(pool, view.id, e2, "x")
    await offers.check_hand_back(pool, view.id, e1)
    back = await offers.hand_back(pool, view.id, e1, "not my field")
    assert (back.state.value, back.expert_id) == ("waiting", None)
    states = {
        r["expert_id"]: (r["state"], r["reason"]) for r in await offers.of_request(pool, view.id)
    }
    assert states[e1] == ("handed_back", "not my field")
    assert states[e2][0] == "released"  # still ringing when it came back: not a lost race
    job = await offers.claim_next(pool, None, 3)  # back in distribution, without e1
    assert job is not None and [c.expert_id for c in job.candidates] == [e2]


async def test_experts_outside_their_hours_are_not_offered_it(pool: asyncpg.Pool) -> None:
    closed, open_ = await _expert(pool, 1), await _expert(pool, 2)
    today = datetime.now(ZoneInfo("Europe/Rome")).date()
    await planning.set_override(pool, closed, today, ())  # closed all day today
    view = await offers.create(pool, "cartomancy", await _client(pool), None)
    job = await offers.claim_next(pool, None, 3)
    assert job is not None and [c.expert_id for c in job.candidates] == [open_]
    await offers.end_offer(pool, job.candidates[0].offer_id, "no_answer")
    await offers.missed(pool, open_, 300)
    await offers.nobody_took(pool, view.id)
    # Only the closed expert is free now: nothing is rung, the request is looked at later.
    assert await offers.claim_next(pool, None, 3) is None
    row = await pool.fetchrow(
        "SELECT state, next_attempt_at > now() + interval '50 seconds' AS later FROM requests"
        " WHERE id = $1",
        view.id,
    )
    assert (row["state"], row["later"]) == ("waiting", True)
    assert await pool.fetchval("SELECT count(*) FROM offers WHERE expert_id = $1", closed) == 0
    due = await offers.next_due(pool)  # not "due now": the dispatcher does not spin on it
    assert due is not None and (due - datetime.now(due.tzinfo)).total_seconds() > 50
