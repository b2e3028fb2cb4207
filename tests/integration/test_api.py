"""The HTTP API on a real PostgreSQL, with Asterisk away: requests are taken and wait,
bad input gets a clear error, nothing is dialled and nothing is lost."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from ivr_engine.store import people, waiting

pytestmark = pytest.mark.integration


async def _call(
    session: aiohttp.ClientSession, method: str, url: str, **kw: Any
) -> tuple[int, Any]:
    async with session.request(method, url, **kw) as resp:
        return resp.status, await resp.json()


async def test_requests_wait_while_asterisk_is_away(api: Any) -> None:
    engine, http, base = api
    status, expert = await _call(
        http,
        "POST",
        f"{base}/api/v1/experts",
        json={"alias": "Anna", "phone": "+390600000101", "rate_per_minute": "1.75"},
    )
    assert status == 201
    status, body = await _call(
        http,
        "POST",
        f"{base}/api/v1/experts/{expert['id']}/requests",
        json={"client_phone": "+393330000202", "client_alias": "Marco", "language": "it"},
    )
    assert status == 201 and body["state"] == "waiting"
    status, again = await _call(http, "GET", f"{base}/api/v1/requests/{body['id']}")
    assert status == 200 and again["state"] == "waiting" and again["attempts"] == 0
    assert await engine.pool.fetchval("SELECT count(*) FROM call_attempts") == 0
    rate = await engine.pool.fetchval("SELECT rate_per_minute FROM experts")
    assert str(rate) == "1.75"
    status, health = await _call(http, "GET", f"{base}/healthz")
    assert status == 503 and health["database"] is True and health["ari"] is False


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "exactly one of client_id or client_phone"),
        ({"client_phone": "abc"}, "client_phone"),
        ({"client_id": 1, "client_phone": "+393330000300"}, "exactly one"),
        ({"client_phone": "+393330000202", "surprise": 1}, "surprise"),
        ({"client_phone": "+393330000202", "language": "xx"}, "language"),
        ([1, 2], "body"),
    ],
)
async def test_malformed_bodies_get_422(api: Any, body: Any, fragment: str) -> None:
    engine, http, base = api
    expert = await people.create_expert(engine.pool, alias="A", phone="+39060001", rate=Decimal(1))
    status, reply = await _call(http, "POST", f"{base}/api/v1/experts/{expert}/requests", json=body)
    assert status == 422 and fragment in reply["error"]


async def test_errors_are_clear(api: Any) -> None:
    engine, http, base = api
    status, reply = await _call(
        http, "POST", f"{base}/api/v1/experts/999/requests", data=b"{not json"
    )
    assert status == 400 and "JSON" in reply["error"]
    status, reply = await _call(
        http, "POST", f"{base}/api/v1/experts/999/requests", json={"client_phone": "+393330000300"}
    )
    assert status == 404 and "expert 999" in reply["error"]
    closed = await people.create_expert(
        engine.pool, alias="B", phone="+39060002", rate=Decimal(2), taking_calls=False
    )
    status, reply = await _call(
        http,
        "POST",
        f"{base}/api/v1/experts/{closed}/requests",
        json={"client_phone": "+393330000300"},
    )
    assert status == 409 and "not taking calls" in reply["error"]
    status, reply = await _call(http, "GET", f"{base}/api/v1/requests/abc")
    assert status == 404
    async with aiohttp.ClientSession() as anonymous:
        status, reply = await _call(anonymous, "GET", f"{base}/api/v1/requests/1")
        assert status == 401
        status, reply = await _call(
            anonymous, "GET", f"{base}/api/v1/requests/1", headers={"Authorization": "Bearer no"}
        )
        assert status == 401


async def test_leave_then_solicit(api: Any) -> None:
    engine, http, base = api
    expert = await people.create_expert(engine.pool, alias="A", phone="+39060001", rate=Decimal(1))
    status, req = await _call(
        http,
        "POST",
        f"{base}/api/v1/experts/{expert}/requests",
        json={"client_phone": "+393330000301"},
    )
    assert status == 201
    status, dup = await _call(
        http,
        "POST",
        f"{base}/api/v1/experts/{expert}/requests",
        json={"client_phone": "+393330000301"},
    )
    assert status == 409 and "already" in dup["error"]
    status, left = await _call(http, "DELETE", f"{base}/api/v1/requests/{req['id']}")
    assert status == 200 and left["state"] == "lost" and left["end_reason"] == "client_left"
    status, reply = await _call(http, "POST", f"{base}/api/v1/requests/{req['id']}/solicit")
    assert status == 409 and "not waiting" in reply["error"]
    status, reply = await _call(http, "POST", f"{base}/api/v1/requests/424242/solicit")
    assert status == 404


async def test_rate_bounds_and_sub_cent_rates_are_refused(api: Any) -> None:
    _, http, base = api
    cases = [("0.05", "outside"), ("150.00", "outside"), ("1.505", "2 decimal places")]
    for rate, fragment in cases:
        status, reply = await _call(
            http,
            "POST",
            f"{base}/api/v1/experts",
            json={"alias": "A", "phone": "+39060001", "rate_per_minute": rate},
        )
        assert status == 422 and "rate_per_minute" in reply["error"], (rate, reply)
        assert fragment in reply["error"], reply


async def test_signed_solicit_link(api: Any) -> None:
    from datetime import UTC, datetime, timedelta

    from ivr_engine.mail.links import sign_solicit

    engine, _, base = api
    expert = await people.create_expert(engine.pool, alias="A", phone="+39060001", rate=Decimal(1))
    client = await people.client_by_phone(engine.pool, "+393330000301")
    req = await waiting.create(engine.pool, expert, client)
    secret = b"link-secret"
    good = sign_solicit(req.id, datetime.now(UTC) + timedelta(minutes=5), secret)
    expired = sign_solicit(req.id, datetime.now(UTC) - timedelta(seconds=1), secret)
    forged = sign_solicit(req.id, datetime.now(UTC) + timedelta(minutes=5), b"other")
    async with aiohttp.ClientSession() as anonymous:  # the link is the credential
        async with anonymous.get(f"{base}/solicit/{req.id}", params={"token": good}) as r:
            page = await r.text()
            assert r.status == 200 and "<form" in page
        for token in (expired, forged, "garbage"):
            async with anonymous.get(f"{base}/solicit/{req.id}", params={"token": token}) as r:
                assert r.status == 403, token
            async with anonymous.post(f"{base}/solicit/{req.id}", data={"token": token}) as r:
                assert r.status == 403, token
        other = sign_solicit(req.id + 1, datetime.now(UTC) + timedelta(minutes=5), secret)
        async with anonymous.post(f"{base}/solicit/{req.id}", data={"token": other}) as r:
            assert r.status == 403
        async with anonymous.post(f"{base}/solicit/{req.id}", data={"token": good}) as r:
            assert r.status == 202
    solicited = await engine.pool.fetchval(
        "SELECT count(*) FROM request_events WHERE request_id = $1 AND detail = 'solicited'",
        req.id,
    )
    assert solicited == 1


async def test_consultations_api_validates_and_404s(api: Any) -> None:
    _, http, base = api
    status, reply = await _call(http, "GET", f"{base}/api/v1/consultations")
    assert status == 422 and "expert_id" in reply["error"]
    status, reply = await _call(http, "GET", f"{base}/api/v1/consultations?expert_id=1&limit=0")
    assert status == 422
    status, reply = await _call(http, "GET", f"{base}/api/v1/consultations?expert_id=1")
    assert status == 200 and reply == {"items": [], "next_before_id": None}
    status, reply = await _call(http, "GET", f"{base}/api/v1/consultations/77")
    assert status == 404


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("112", "emergency"),
        ("+39113", "emergency"),
        ("1254", "short"),
        ("+39899123456", "type"),  # premium rate
        ("+39848123456", "type"),  # shared cost
        ("+881612345678", "country"),  # a satellite phone
        ("+390611", "invalid"),
    ],
)
async def test_numbers_nobody_may_dial_get_422_with_the_reason(
    api: Any, number: str, reason: str
) -> None:
    engine, http, base = api
    expert = await people.create_expert(engine.pool, alias="A", phone="+39060001", rate=Decimal(1))
    status, body = await _call(
        http, "POST", f"{base}/api/v1/experts/{expert}/requests", json={"client_phone": number}
    )
    assert (status, body["reason"]) == (422, reason), body
    assert body["error"].startswith("client_phone: ")
    status, body = await _call(
        http,
        "POST",
        f"{base}/api/v1/experts",
        json={"alias": "B", "phone": number, "rate_per_minute": "1.50"},
    )
    assert (status, body["reason"]) == (422, reason), body
    assert await engine.pool.fetchval("SELECT count(*) FROM requests") == 0
    assert await engine.pool.fetchval("SELECT count(*) FROM clients") == 0


async def test_numbers_are_stored_in_e164(api: Any) -> None:
    engine, http, base = api
    status, made = await _call(
        http,
        "POST",
        f"{base}/api/v1/experts",
        json={"alias": "A", "phone": "0612345678", "rate_per_minute": "1.50"},
    )
    assert status == 201
    status, _ = await _call(
        http,
        "POST",
        f"{base}/api/v1/experts/{made['id']}/requests",
        json={"client_phone": "00393331234567"},
    )
    assert status == 201
    assert await engine.pool.fetchval("SELECT phone FROM experts") == "+390612345678"
    assert await engine.pool.fetchval("SELECT phone FROM clients") == "+393331234567"
