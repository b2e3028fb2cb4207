"""A consultation's start and end against a real PostgreSQL: each one statement, all or
nothing, one bill and one earnings email whatever races them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from ivr_engine.domain.job import Job
from ivr_engine.domain.money import make_tariff
from ivr_engine.domain.requests import RequestState
from ivr_engine.errors import Conflict
from ivr_engine.store import attempts, claims, consultations, people, waiting
from ivr_engine.store.attempts import AttemptEnd

pytestmark = pytest.mark.integration
S = RequestState
START = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


async def _ringing_client(pool: asyncpg.Pool) -> tuple[Job, str, str]:
    expert = await people.create_expert(
        pool, alias="Anna", phone="+3906000101", rate=Decimal("1.50"), email="a@example.org"
    )
    client = await people.client_by_phone(pool, "+3933300001", alias="Marco")
    await waiting.create(pool, expert, client)
    job = await claims.claim_next(pool)
    assert job is not None
    legs = [
        await attempts.new(pool, job.request_id, leg=leg, purpose=p, dial_string="PJSIP/x")
        for leg, p in (("expert", "offer"), ("client", "connect"))
    ]
    await waiting.move(pool, job.request_id, S.RINGING_EXPERT, S.RINGING_CLIENT, "accepted")
    return job, legs[0], legs[1]


async def _begin(pool: asyncpg.Pool, job: Job, expert: str, client: str) -> int:
    tariff = make_tariff(
        rate=job.rate,
        category=job.category,
        expert_number=job.expert_phone,
        region="IT",
        mobile_cost=Decimal("0.20"),
        fixed_cost=Decimal("0.01"),
        commission_percent=Decimal("10"),
        granularity_seconds=1,
        minimum_seconds=0,
    )
    return await consultations.begin(
        pool,
        job,
        tariff,
        bridge_id=f"ivr-{job.request_id}-bridge",
        expert_channel=expert,
        client_channel=client,
        start=START,
    )


async def test_begin_moves_and_freezes_together_or_not_at_all(pool: asyncpg.Pool) -> None:
    job, expert, client = await _ringing_client(pool)
    consultation_id = await _begin(pool, job, expert, client)
    row = await pool.fetchrow("SELECT * FROM consultations WHERE id = $1", consultation_id)
    assert row["request_id"] == job.request_id and row["rate_per_minute"] == Decimal("1.50")
    assert row["bridge_start"] == START == row["seen_at"]
    assert (await waiting.get(pool, job.request_id)).state is S.CONNECTED
    with pytest.raises(Conflict):  # no longer ringing the client: no second row
        await _begin(pool, job, expert, client)
    assert await pool.fetchval("SELECT count(*) FROM consultations") == 1
    events = await pool.fetch(
        "SELECT to_state FROM request_events WHERE request_id = $1 ORDER BY id", job.request_id
    )
    assert [e["to_state"] for e in events][-1] == "connected"


async def test_racing_finishes_bill_once_and_end_the_attempts(pool: asyncpg.Pool) -> None:
    job, expert, client = await _ringing_client(pool)
    await _begin(pool, job, expert, client)
    end = START + timedelta(seconds=61)
    legs = [
        AttemptEnd(expert, "completed", END_AT, 16, "Normal Clearing", dtmf="1", choice="1"),
        AttemptEnd(client, "completed", None, None, ""),
    ]
    results = await asyncio.gather(
        *(
            consultations.finish(pool, job.request_id, end=end, ended_by=by, attempts_ended=legs)
            for by in ("expert", "client", "engine")
        ),
        return_exceptions=True,
    )
    bills = [r for r in results if not isinstance(r, BaseException)]
    assert len(bills) == 1 and bills[0] is not None and bills[0].billed_seconds == 61
    assert all(isinstance(r, Conflict) for r in results if r not in bills)
    row = await pool.fetchrow("SELECT * FROM consultations")
    assert row["bridge_end"] == end and row["earnings"] is not None
    mail = await pool.fetch("SELECT kind, consultation_id, payload FROM outbox_emails")
    assert [(m["kind"], m["consultation_id"]) for m in mail] == [
        ("consultation_earnings", row["id"])
    ]
    assert '"billed_seconds": 61' in mail[0]["payload"]
    ended = {
        r["channel_id"]: r
        for r in await pool.fetch(
            "SELECT * FROM call_attempts WHERE request_id = $1", job.request_id
        )
    }
    assert ended[expert]["ended_at"] == END_AT and ended[expert]["choice"] == "1"
    assert ended[expert]["hangup_cause"] == 16 and ended[expert]["dtmf"] == "1"
    assert ended[client]["outcome"] == "completed" and ended[client]["ended_at"] is not None
    final = await waiting.get(pool, job.request_id)
    assert final.state is S.COMPLETED and final.end_reason.startswith("ended by ")


async def test_finish_of_a_request_not_connected_bills_nothing(pool: asyncpg.Pool) -> None:
    job, expert, client = await _ringing_client(pool)
    with pytest.raises(Conflict):
        await consultations.finish(pool, job.request_id, end=None, ended_by="engine")
    assert (await waiting.get(pool, job.request_id)).state is S.RINGING_CLIENT
    await _begin(pool, job, expert, client)
    await pool.execute("UPDATE requests SET state = 'completed' WHERE id = $1", job.request_id)
    leg = AttemptEnd(client, "completed", None, None, "")
    with pytest.raises(Conflict):  # moved meanwhile: no bill, no email; the leg still ends
        await consultations.finish(
            pool, job.request_id, end=None, ended_by="x", attempts_ended=[leg]
        )
    assert await pool.fetchval("SELECT bridge_end FROM consultations") is None
    assert await pool.fetchval("SELECT count(*) FROM outbox_emails") == 0
    assert (
        await pool.fetchval("SELECT outcome FROM call_attempts WHERE channel_id = $1", client)
        == "completed"
    )


END_AT = START + timedelta(seconds=61)


async def test_the_key_moves_the_request_and_records_the_client_call_together(
    pool: asyncpg.Pool,
) -> None:
    expert = await people.create_expert(
        pool, alias="Anna", phone="+3906000101", rate=Decimal("1.50"), email="a@example.org"
    )
    client = await people.client_by_phone(pool, "+3933300001", alias="Marco")
    await waiting.create(pool, expert, client)
    job = await claims.claim_next(pool)
    assert job is not None

    def accept() -> Awaitable[str]:
        return attempts.new_after_move(
            pool,
            job.request_id,
            S.RINGING_EXPERT,
            S.RINGING_CLIENT,
            "expert_accepted",
            leg="client",
            purpose="connect",
            dial_string="PJSIP/c",
        )

    channel = await accept()
    assert channel.startswith(f"ivr-{job.request_id}-")
    row = await pool.fetchrow("SELECT * FROM call_attempts WHERE channel_id = $1", channel)
    assert (row["leg"], row["purpose"], row["dial_string"]) == ("client", "connect", "PJSIP/c")
    assert (await waiting.get(pool, job.request_id)).state is S.RINGING_CLIENT
    with pytest.raises(Conflict):  # moved already: no second call recorded
        await accept()
    assert await pool.fetchval("SELECT count(*) FROM call_attempts") == 1
