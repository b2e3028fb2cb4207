"""POST /api/v1/requests with a category on a real PostgreSQL, Asterisk away: the request
waits with no expert, the answer gives the expected delay, bad input gets a clear error and
creates nothing."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

pytestmark = pytest.mark.integration


async def _call(
    session: aiohttp.ClientSession, method: str, url: str, **kw: Any
) -> tuple[int, Any]:
    async with session.request(method, url, **kw) as resp:
        return resp.status, await resp.json()


async def _expert(http: aiohttp.ClientSession, base: str, phone: str, **kw: Any) -> int:
    body = {"alias": "Anna", "phone": phone, "rate_per_minute": "1.75", **kw}
    status, out = await _call(http, "POST", f"{base}/api/v1/experts", json=body)
    assert status == 201, out
    return int(out["id"])


async def test_a_category_request_waits_with_its_expected_delay(api: Any) -> None:
    engine, http, base = api
    await _expert(http, base, "+390600000101", category="cartomancy", language="it")
    url = f"{base}/api/v1/requests"
    status, body = await _call(
        http,
        "POST",
        url,
        json={"category": "cartomancy", "client_phone": "+393330000202", "client_alias": "Marco"},
    )
    assert status == 201, body
    assert (body["state"], body["expert_id"], body["category"]) == ("waiting", None, "cartomancy")
    assert body["expected_delay_seconds"] == 0  # the expert could be rung now
    status, again = await _call(http, "GET", f"{base}/api/v1/requests/{body['id']}")
    assert status == 200 and again["category"] == "cartomancy" and again["expert_id"] is None
    # The same client again: 409; another client while the only expert is paused waits
    # behind the first (600 s each without history, one expert).
    status, dup = await _call(
        http, "POST", url, json={"category": "cartomancy", "client_phone": "+393330000202"}
    )
    assert status == 409 and "already waits" in dup["error"]
    await engine.pool.execute("UPDATE experts SET paused_until = now() + interval '1 hour'")
    status, second = await _call(
        http,
        "POST",
        url,
        json={"category": "cartomancy", "client_phone": "+393330000203", "expert_language": "it"},
    )
    assert status == 201 and second["expected_delay_seconds"] == 1200
    # The client leaves: lost, as for an expert's list.
    status, left = await _call(http, "DELETE", f"{base}/api/v1/requests/{body['id']}")
    assert status == 200 and left["state"] == "lost"
    assert await engine.pool.fetchval("SELECT count(*) FROM call_attempts") == 0


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"category": "astrology", "client_phone": "+393330000202"}, 422, "astrology"),
        ({"category": "cartomancy", "expert_language": "it", "client_phone": "+393330000202"},
         422, "cartomancy"),
        ({"category": "", "client_phone": "+393330000202"}, 422, "category"),
        ({"category": "Carto mancy", "client_phone": "+393330000202"}, 422, "category"),
        ({"client_phone": "+393330000202"}, 422, "category"),
        ({"category": "cartomancy"}, 422, "exactly one"),
        ({"category": "cartomancy", "client_id": 99999}, 404, "client"),
        ({"category": "cartomancy", "client_phone": "112"}, 422, "client_phone"),
        ({"category": "cartomancy", "client_phone": "+393330000202", "expert_id": 1}, 422,
         "expert_id"),
    ],
)  # fmt: skip
async def test_bad_category_requests_are_refused_and_create_nothing(
    api: Any, body: Any, status: int, fragment: str
) -> None:
    engine, http, base = api
    await _expert(http, base, "+390600000101", category="cartomancy")
    got, answer = await _call(http, "POST", f"{base}/api/v1/requests", json=body)
    assert got == status and fragment in answer["error"], answer
    if "astrology" in str(body) or "expert_language" in str(body):
        assert answer["reason"] == "unknown_category"
    assert await engine.pool.fetchval("SELECT count(*) FROM requests") == 0
