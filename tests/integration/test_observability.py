"""Health, readiness, /metrics, the access log and life behind a reverse proxy, on an engine
with a real PostgreSQL and Asterisk away."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from ivr_engine.engine import Engine
from tests.conftest import asterisk_away

pytestmark = pytest.mark.integration

TOKEN = "obs-token"
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "ivr-engine-dashboard.json"
SUFFIXES = ("bucket", "count", "sum")
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Start = Callable[..., Awaitable[tuple[Engine, str]]]


@pytest.fixture
async def start(dsn: str) -> AsyncIterator[Start]:
    engines: list[Engine] = []

    async def run(**overrides: Any) -> tuple[Engine, str]:
        # Plain HTTP on loopback: the test client sends no Secure cookie over it.
        overrides.setdefault("panel_secure_cookie", False)
        settings = asterisk_away(dsn, TOKEN).model_copy(update=overrides)
        engine = Engine(settings)
        engines.append(engine)
        await engine.start()
        return engine, f"http://127.0.0.1:{engine.http_port}"

    try:
        yield run
    finally:
        for engine in engines:
            await engine.close()


async def _get(url: str, **kw: Any) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url, **kw) as resp:
        return resp.status, await resp.text()


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text format."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_:]+)(\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(4))
    raise AssertionError(f"no sample {name}{labels}")


async def test_liveness_readiness_and_health_say_no_more_than_they_may(start: Start) -> None:
    _, base = await start()
    assert await _get(base + "/livez") == (200, '{"status": "alive"}')
    assert await _get(base + "/readyz") == (503, '{"status": "not_ready"}')
    assert await _get(base + "/healthz") == (503, '{"status": "unavailable"}')
    status, body = await _get(base + "/healthz", headers=AUTH)
    assert status == 503 and '"database": true' in body and '"ari": false' in body
    status, body = await _get(base + "/readyz", headers=AUTH)
    assert status == 503
    assert '"checks": {"database": true, "ari": false, "draining": false}' in body


async def test_metrics_need_a_token_and_show_the_waiting_list(start: Start) -> None:
    engine, base = await start(metrics_token=SecretStr("scraper-only"))
    async with aiohttp.ClientSession(headers=AUTH) as http:
        async with http.post(
            base + "/api/v1/experts",
            json={"alias": "A", "phone": "+390600000101", "rate_per_minute": 1},
        ) as resp:
            expert = (await resp.json())["id"]
        async with http.post(
            f"{base}/api/v1/experts/{expert}/requests", json={"client_phone": "+393330000777"}
        ) as resp:
            assert resp.status == 201
    await engine.pool.execute(
        "INSERT INTO outbox_emails (kind, to_address, failed_at) VALUES ('x', 'a@b.c', now())"
    )
    assert (await _get(base + "/metrics"))[0] == 401
    assert (await _get(base + "/metrics", headers={"Authorization": "Bearer nope"}))[0] == 401
    status, text = await _get(base + "/metrics", headers={"Authorization": "Bearer scraper-only"})
    assert status == 200
    assert sample(text, "ivr_requests", state="waiting") == 1
    assert sample(text, "ivr_requests", state="completed") == 0
    assert sample(text, "ivr_outbox_failed") == 1
    assert sample(text, "ivr_calls_in_progress") == 0
    assert sample(text, "ivr_ari_connected") == 0
    assert sample(text, "ivr_database_up") == 1
    assert sample(text, "ivr_db_pool_max") == 10
    assert sample(text, "ivr_db_pool_connections", state="in_use") >= 0
    assert sample(text, "ivr_event_loop_lag_seconds") >= 0
    assert sample(text, "ivr_bridged_seconds_total") == 0
    route = "/api/v1/experts/{expert_id}/requests"
    assert sample(text, "ivr_http_requests_total", route=route, status="201") == 1
    _dashboard_reads_only(text)
    # the scraper's token reads nothing else
    status, _ = await _get(f"{base}/api/v1/requests/1", headers={"Authorization": "Bearer x"})
    assert status == 401


def _dashboard_reads_only(scraped: str) -> None:
    """deploy/grafana's dashboard asks only for series the engine exports."""
    families = set(re.findall(r"^# TYPE (\S+) (\w+)$", scraped, flags=re.M))
    names = {name for name, _ in families}
    names |= {f"{n}_total" for n, kind in families if kind == "counter"}
    names |= {f"{n}_{s}" for n, kind in families if kind == "histogram" for s in SUFFIXES}
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for e in exprs for name in re.findall(r"\b(ivr_[a-z_]+)", e)}
    assert used and used - names == set()


async def test_one_access_line_per_request_without_secrets(start: Start) -> None:
    _, base = await start()
    with capture_logs() as logs:
        await _get(base + "/solicit/1?token=very-secret-link-token")
        await _get(base + "/api/v1/experts/+393331234567/availability", headers=AUTH)
    lines = [line for line in logs if line["event"] == "http.access"]
    assert [(line["route"], line["status"]) for line in lines] == [
        ("/solicit/{request_id}", 403),
        ("/api/v1/experts/{expert_id}/availability", 404),
    ]
    assert lines[0]["path"] == "/solicit/1" and lines[0]["client"] == "127.0.0.1"
    assert lines[1]["path"] == "/api/v1/experts/…567/availability"
    assert "very-secret" not in repr(logs) and "1234567" not in repr(logs)
    assert TOKEN not in repr(logs)


async def _sign_in(base: str, jar: aiohttp.CookieJar, email: str, **headers: str) -> int:
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(base + "/login") as resp:
            assert resp.status == 200
        csrf = next(c.value for c in jar if c.key == "ivr_login_csrf")
        form = {"email": email, "password": "wrong password!", "csrf": csrf}
        async with http.post(base + "/login", data=form, headers=headers) as resp:
            return resp.status


async def test_throttling_counts_the_client_behind_a_trusted_proxy(start: Start) -> None:
    _, base = await start(trusted_proxies=(ip_network("127.0.0.1/32"),), login_max_failures=2)
    jar = aiohttp.CookieJar(unsafe=True)
    mallory = {"X-Forwarded-For": "203.0.113.66"}
    statuses = [await _sign_in(base, jar, f"user{i}@example.org", **mallory) for i in range(3)]
    assert statuses == [401, 401, 429]  # the address is locked, whatever the email
    # another client behind the same proxy is not locked out
    other = {"X-Forwarded-For": "198.51.100.5"}
    assert await _sign_in(base, jar, "someone@example.org", **other) == 401


async def test_without_trusted_proxy_the_header_is_ignored(start: Start) -> None:
    _, base = await start(login_max_failures=2)
    jar = aiohttp.CookieJar(unsafe=True)
    for forged in ("203.0.113.1", "203.0.113.2"):
        await _sign_in(base, jar, f"{forged}@example.org", **{"X-Forwarded-For": forged})
    # the peer (127.0.0.1) made both tries: a third "client" is locked with it
    assert await _sign_in(base, jar, "x@example.org", **{"X-Forwarded-For": "203.0.113.3"}) == 429


async def test_csrf_origin_is_the_public_url(start: Start) -> None:
    _, base = await start(public_url="https://ivr.example.org")
    jar = aiohttp.CookieJar(unsafe=True)
    # behind a proxy, Host is the engine's own address: the public origin is accepted
    assert await _sign_in(base, jar, "a@example.org", Origin="https://ivr.example.org") == 401
    assert await _sign_in(base, jar, "a@example.org", Origin="https://evil.example") == 403
    assert await _sign_in(base, jar, "a@example.org", Origin="http://ivr.example.org") == 403
