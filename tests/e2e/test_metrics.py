"""/metrics after a real consultation on the sandbox: the figures agree with what PostgreSQL
recorded and with what was in progress; AMI's health check works with the "reporting"
right alone; Asterisk's own res_prometheus answers with the series the dashboard reads."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest

from ivr_devkit.simphones import PhoneBook, answer
from tests.integration.test_observability import sample

from .conftest import API_TOKEN, Harness

pytestmark = pytest.mark.e2e

EXPERT = "+393330000141"
CLIENT = "+393330000242"
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "ivr-engine-dashboard.json"


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _scrape(url: str, **headers: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.text()


async def test_metrics_after_a_real_consultation(
    harness: Callable[..., Awaitable[Harness]], phones: PhoneBook
) -> None:
    await phones.phone(EXPERT, answer("1", dtmf_delay_ms=1000))
    await phones.phone(CLIENT, answer(hangup_after_ms=8000))
    # No SMTP server: the earnings email stays in the outbox, retried later.
    h = await harness(smtp_port=_dead_port())
    metrics = h.base + "/metrics"
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    expert_id = await h.expert(EXPERT, rate="2.50")
    request_id = await h.request(expert_id, CLIENT)

    await h.wait_state(request_id, "connected", timeout=40)
    during = await _scrape(metrics, **auth)
    assert sample(during, "ivr_consultations_in_progress") == 1
    assert sample(during, "ivr_calls_in_progress") == 2  # the expert's and the client's legs
    assert sample(during, "ivr_requests", state="connected") == 1

    await h.wait_state(request_id, "completed", timeout=40)
    text = await _scrape(metrics, **auth)
    status, page = await h.api("GET", f"/api/v1/consultations?expert_id={expert_id}")
    assert status == 200
    [bill] = page["items"]
    assert sample(text, "ivr_requests", state="completed") == 1
    assert sample(text, "ivr_consultations_in_progress") == 0
    assert sample(text, "ivr_bridged_seconds_total") == bill["billed_seconds"] > 0
    assert Decimal(str(sample(text, "ivr_billed_euros_total"))) == Decimal(bill["client_price"])
    rows = await h.pool.fetch(
        "SELECT leg, outcome, coalesce(hangup_cause::text, '') AS cause, count(*) AS n"
        " FROM call_attempts WHERE request_id = $1 GROUP BY 1, 2, 3",
        request_id,
    )
    assert {r["leg"] for r in rows} == {"expert", "client"}
    for r in rows:
        labels = {"leg": r["leg"], "outcome": r["outcome"], "cause": r["cause"]}
        assert sample(text, "ivr_dial_outcomes_total", **labels) == r["n"]
    assert sample(text, "ivr_outbox_backlog") == 1  # the earnings email, undelivered
    assert sample(text, "ivr_ari_connected") == 1
    assert sample(text, "ivr_ari_reconnects_total") == 0
    assert sample(text, "ivr_ami_healthy") == 1  # CoreStatus with read/write = reporting

    status, health = await h.api("GET", "/healthz")
    assert status == 200 and health["ami"] is True and health["ready"] is True

    # Asterisk's own metrics, served beside ARI by res_prometheus.
    asterisk = await _scrape(h.info.ari_url.removesuffix("/ari") + "/metrics")
    exported = set(re.findall(r"^# TYPE (\S+) ", asterisk, flags=re.M))
    dashboard = json.loads(DASHBOARD.read_text())
    wanted = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"(?<![$\w])(asterisk_[a-z_]+)", target["expr"])
    }
    assert wanted and wanted <= exported, sorted(exported)
