"""The OpenAPI document: valid OpenAPI 3.1, one operation per /api/v1 route the app really
has, and every answer of a real engine (PostgreSQL, Asterisk away) fits the status codes
and the schemas it documents."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from ivr_engine.engine import Engine
from ivr_engine.web.api.openapi import BASE, PUBLIC
from tests.conftest import asterisk_away

pytestmark = pytest.mark.integration

TOKEN = "openapi-token"


class Client:
    def __init__(self, base: str, doc: dict[str, Any], http: aiohttp.ClientSession) -> None:
        self.base = base
        self.doc = doc
        self.http = http
        self.covered: set[tuple[str, str]] = set()

    async def check(
        self, method: str, template: str, status: int, body: Any = None, **values: Any
    ) -> Any:
        """Call ``template`` (a documented path) and check the answer against the document."""
        op = self.doc["paths"][BASE + template][method]
        path = BASE + template.format(**values.pop("path", {}))
        headers = {"Authorization": f"Bearer {TOKEN}"}
        kw: dict[str, Any] = {"headers": headers, "params": values.pop("query", None)}
        if isinstance(body, bytes):
            kw["data"] = body
        elif body is not None:
            kw["json"] = body
        async with self.http.request(method, self.base + path, **kw) as resp:
            text = await resp.text()
            assert resp.status == status, (method, path, resp.status, text)
            answer = op["responses"].get(str(resp.status))
            assert answer is not None, f"{method} {template}: {resp.status} not documented"
            content = answer.get("content", {}).get("application/json")
            if content is None:
                assert text == "", (method, path, text)
                data = None
            else:
                assert resp.content_type == "application/json"
                data = json.loads(text)
                schema = {**content["schema"], "components": self.doc["components"]}
                Draft202012Validator(schema).validate(data)
        self.covered.add((method, template))
        return data


@pytest.fixture
async def client(dsn: str) -> AsyncIterator[tuple[Client, Engine]]:
    engine = Engine(asterisk_away(dsn, TOKEN))
    await engine.start()
    base = f"http://127.0.0.1:{engine.http_port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(base + PUBLIC[0]) as resp:  # no token needed
            assert resp.status == 200
            doc = await resp.json()
        try:
            yield Client(base, doc, http), engine
        finally:
            await engine.close()


async def test_the_document_is_valid_and_lists_every_route(
    client: tuple[Client, Engine],
) -> None:
    c, engine = client
    validate(c.doc)
    assert c.doc["openapi"] == "3.1.0"
    assert engine._runner is not None
    app = engine._runner.app
    served = {
        (route.method.lower(), info["formatter"] if "formatter" in info else info["path"])
        for route in app.router.routes()
        if route.method != "HEAD"
        for info in [route.resource.get_info()]  # type: ignore[union-attr]
        if str(info.get("formatter", info.get("path", ""))).startswith(BASE)
    }
    documented = {(m, p) for p, ops in c.doc["paths"].items() for m in ops}
    assert served == documented
    async with c.http.get(c.base + PUBLIC[1]) as resp:
        page = await resp.text()
        assert resp.status == 200 and resp.content_type == "text/html"
    assert "/api/v1/experts/{expert_id}/requests" in page and "RequestOut" in page


async def test_every_answer_fits_the_document(client: tuple[Client, Engine]) -> None:
    c, engine = client
    expert = {"alias": "Anna", "phone": "+390600000101", "rate_per_minute": "1.50"}
    e = (await c.check("post", "/experts", 201, expert))["id"]
    await c.check("post", "/experts", 400, b"{nope")
    await c.check("post", "/experts", 422, {**expert, "rate_per_minute": "1.505"})
    ep = {"expert_id": e}
    joined = await c.check(
        "post", "/experts/{expert_id}/requests", 201, {"client_phone": "+393330000301"}, path=ep
    )
    r = {"request_id": joined["id"]}
    await c.check(
        "post", "/experts/{expert_id}/requests", 409, {"client_phone": "+393330000301"}, path=ep
    )
    await c.check("post", "/experts/{expert_id}/requests", 404, {"client_id": 999}, path=ep)
    await c.check(
        "post", "/experts/{expert_id}/requests", 404, {"client_id": 1}, path={"expert_id": "²"}
    )
    await c.check("post", "/experts/{expert_id}/requests", 422, {"client_id": 0}, path=ep)
    await c.check("post", "/experts/{expert_id}/requests", 422, {"client_id": 2**63}, path=ep)
    await c.check("post", "/experts/{expert_id}/requests", 400, b"[", path=ep)
    await c.check("post", "/experts/{expert_id}/requests", 400, b"[" * 2000, path=ep)
    await c.check("post", "/experts/{expert_id}/requests", 400, b"1" * 5000, path=ep)
    await c.check("post", "/experts/{expert_id}/requests", 400, b'"\xff"', path=ep)
    for alias in ("Mar\nco", "Mar\x00co", "Marco\u2028", "\ud800"):
        bad = {"client_phone": "+393330000202", "client_alias": alias}
        await c.check("post", "/experts/{expert_id}/requests", 422, bad, path=ep)
    bad_keys = {"timezone": "Europe/Rome", "weekly": {"mon\rday": []}}
    await c.check("put", "/experts/{expert_id}/planning", 422, bad_keys, path=ep)
    await c.check("post", "/experts", 422, {**expert, "email": "a@b.it\r\nBcc: x@y.it"})
    await c.check("get", "/requests/{request_id}", 200, path=r)
    await c.check("get", "/requests/{request_id}", 404, path={"request_id": 2**63})
    await c.check("post", "/requests/{request_id}/solicit", 202, path=r)
    await c.check("delete", "/requests/{request_id}", 200, path=r)
    await c.check("delete", "/requests/{request_id}", 409, path=r)
    await c.check("delete", "/requests/{request_id}", 404, path={"request_id": 999})
    await c.check("post", "/requests/{request_id}/solicit", 409, path=r)
    await c.check("post", "/requests/{request_id}/solicit", 404, path={"request_id": 999})

    await engine.pool.execute(
        "INSERT INTO consultations (request_id, expert_id, client_id, bridge_id,"
        " expert_channel_id, client_channel_id, rate_per_minute, bridge_start, bridge_end,"
        " billed_seconds, charged_seconds, client_price, transfer_cost, commission, earnings)"
        " SELECT id, expert_id, client_id, 'b', 'x', 'y', 1.50, now() - interval '2 min',"
        " now(), 120, 120, 3.00, 0.40, 0, 2.60 FROM requests WHERE id = $1",
        joined["id"],
    )
    page = await c.check("get", "/consultations", 200, query={"expert_id": e, "limit": 1})
    assert page["items"][0]["earnings"] == "2.60" and page["next_before_id"] is not None
    await c.check("get", "/consultations", 422, query={"limit": 5})
    await c.check("get", "/consultations", 422, query={"expert_id": e, "limit": 0})
    one = {"consultation_id": page["items"][0]["id"]}
    await c.check("get", "/consultations/{consultation_id}", 200, path=one)
    await c.check("get", "/consultations/{consultation_id}", 404, path={"consultation_id": 999})

    await c.check("get", "/experts/{expert_id}/availability", 200, path=ep)
    await c.check("get", "/experts/{expert_id}/availability", 404, path={"expert_id": 999})
    await c.check("get", "/experts/{expert_id}/planning", 200, path=ep)
    await c.check("get", "/experts/{expert_id}/planning", 404, path={"expert_id": 999})
    week = {"timezone": "Europe/Rome", "weekly": {"monday": ["09:00-12:30"]}}
    await c.check("put", "/experts/{expert_id}/planning", 200, week, path=ep)
    await c.check(
        "put", "/experts/{expert_id}/planning", 422, {**week, "weekly": {"moon": []}}, path=ep
    )
    await c.check("put", "/experts/{expert_id}/planning", 404, week, path={"expert_id": 999})
    await c.check("put", "/experts/{expert_id}/planning", 400, b"x", path=ep)
    day = {**ep, "day": "2026-12-24"}
    await c.check(
        "put", "/experts/{expert_id}/planning/days/{day}", 200, {"slots": ["09:00-12:00"]}, path=day
    )
    await c.check(
        "put",
        "/experts/{expert_id}/planning/days/{day}",
        422,
        {"slots": []},
        path={**ep, "day": "24-12-2026"},
    )
    await c.check("put", "/experts/{expert_id}/planning/days/{day}", 400, b"x", path=day)
    await c.check(
        "put",
        "/experts/{expert_id}/planning/days/{day}",
        404,
        {"slots": []},
        path={**day, "expert_id": 999},
    )
    await c.check("delete", "/experts/{expert_id}/planning/days/{day}", 200, path=day)
    await c.check(
        "delete", "/experts/{expert_id}/planning/days/{day}", 422, path={**ep, "day": "x"}
    )
    await c.check(
        "delete", "/experts/{expert_id}/planning/days/{day}", 404, path={**day, "expert_id": 999}
    )
    await c.check("post", "/experts/{expert_id}/pause", 200, path=ep)
    await c.check("post", "/experts/{expert_id}/pause", 200, {"minutes": 5}, path=ep)
    await c.check("post", "/experts/{expert_id}/pause", 422, {"minutes": 0}, path=ep)
    await c.check("post", "/experts/{expert_id}/pause", 400, b"x", path=ep)
    await c.check("post", "/experts/{expert_id}/pause", 404, path={"expert_id": 999})
    await c.check("delete", "/experts/{expert_id}/pause", 200, path=ep)
    await c.check("delete", "/experts/{expert_id}/pause", 404, path={"expert_id": 999})
    await c.check("put", "/experts/{expert_id}/channels", 200, {"chat": False}, path=ep)
    await c.check("put", "/experts/{expert_id}/channels", 422, {"fax": True}, path=ep)
    await c.check("put", "/experts/{expert_id}/channels", 400, b"x", path=ep)
    await c.check("put", "/experts/{expert_id}/channels", 404, {}, path={"expert_id": 999})
    await c.check("put", "/experts/{expert_id}/pin", 204, {"pin": "432109"}, path=ep)
    await c.check("put", "/experts/{expert_id}/pin", 422, {"pin": "12"}, path=ep)
    await c.check("put", "/experts/{expert_id}/pin", 400, b"x", path=ep)
    await c.check(
        "put", "/experts/{expert_id}/pin", 404, {"pin": "432109"}, path={"expert_id": 999}
    )
    await c.check("post", "/experts/{expert_id}/requests/refuse-waiting", 200, path=ep)
    await c.check(
        "post", "/experts/{expert_id}/requests/refuse-waiting", 404, path={"expert_id": 999}
    )

    # A category request (the expert above is of category "general").
    cat = {"category": "general", "client_phone": "+393330000207"}
    made = await c.check("post", "/requests", 201, cat)
    assert made["expert_id"] is None and made["expected_delay_seconds"] >= 0
    await c.check("get", "/requests/{request_id}", 200, path={"request_id": made["id"]})
    await c.check("post", "/requests", 409, cat)
    await c.check("post", "/requests", 422, {**cat, "category": "astrology"})
    await c.check("post", "/requests", 422, {**cat, "category": ""})
    await c.check("post", "/requests", 400, b"[")
    await c.check("post", "/requests", 404, {"category": "general", "client_id": 99999})

    documented = {
        (m, p.removeprefix(BASE))
        for p, ops in c.doc["paths"].items()
        if p not in PUBLIC
        for m in ops
    }
    assert c.covered == documented

    async with c.http.get(c.base + BASE + "/requests/1") as resp:  # and 401, as documented
        assert resp.status == 401 and "error" in await resp.json()


async def test_every_failure_under_api_is_json(client: tuple[Client, Engine]) -> None:
    """aiohttp's own answers (no such route, wrong method) and a broken database answer
    JSON too: 503 while PostgreSQL is away (documented), a JSON 500 for a bug (logged)."""
    c, engine = client
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for method, path, status in (
        ("GET", "/nothing-here", 404),
        ("PATCH", "/requests/1", 405),
        ("POST", "/experts", 413),
    ):
        data = b"x" * (65 * 1024) if status == 413 else None
        async with c.http.request(method, c.base + BASE + path, headers=auth, data=data) as r:
            assert (r.status, r.content_type) == (status, "application/json"), path
            assert set(await r.json()) == {"error"}
            if status == 405:
                assert "GET" in r.headers["Allow"]
    await engine.pool.execute("ALTER TABLE requests RENAME TO requests_gone")
    async with c.http.get(c.base + BASE + "/requests/1", headers=auth) as r:
        assert (r.status, await r.json()) == (500, {"error": "internal error"})
    await engine.pool.execute("ALTER TABLE requests_gone RENAME TO requests")
    await engine.pool.close()  # PostgreSQL unreachable, as far as the engine can tell
    await c.check("get", "/requests/{request_id}", 503, path={"request_id": 1})
    await c.check("post", "/experts/{expert_id}/pause", 503, path={"expert_id": 1})
