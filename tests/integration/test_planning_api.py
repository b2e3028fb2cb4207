"""Availability through the HTTP API on a real PostgreSQL: planning, days, pause, channels,
and the waiting list closing outside hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ivr_engine.store import claims, people

from .conftest import call

pytestmark = pytest.mark.integration

ROME = ZoneInfo("Europe/Rome")


async def _expert(engine: Any) -> int:
    return int(
        await people.create_expert(engine.pool, alias="A", phone="+390612345678", rate=Decimal(2))
    )


async def test_no_planning_means_open_and_pause_closes(api: Any) -> None:
    engine, http, base = api
    expert = await _expert(engine)
    status, av = await call(http, "GET", f"{base}/api/v1/experts/{expert}/availability")
    assert status == 200 and av["open"] is True and av["has_planning"] is False

    status, av = await call(http, "POST", f"{base}/api/v1/experts/{expert}/pause", json={})
    assert status == 200 and av["open"] is False and av["reason"] == "paused"
    until = datetime.fromisoformat(av["paused_until"])
    assert timedelta(minutes=19) < until - datetime.now(UTC) <= timedelta(minutes=20)
    assert datetime.fromisoformat(av["next_opening"]) == until  # open again when it ends
    # A paused expert is not rung, but clients may still join the waiting list.
    status, req = await call(
        http,
        "POST",
        f"{base}/api/v1/experts/{expert}/requests",
        json={"client_phone": "+393330000011"},
    )
    assert status == 201 and req["state"] == "waiting"
    assert await claims.claim_next(engine.pool) is None  # not dialled while paused

    status, av = await call(http, "DELETE", f"{base}/api/v1/experts/{expert}/pause")
    assert status == 200 and av["open"] is True and av["paused_until"] is None
    job = await claims.claim_next(engine.pool)  # back: the waiting client is served
    assert job is not None and job.request_id == req["id"]


async def test_weekly_planning_closes_the_list_outside_hours(api: Any) -> None:
    engine, http, base = api
    expert = await _expert(engine)
    now = datetime.now(ROME)
    # Open only in a one-hour slot twelve hours away: closed now, whatever the time.
    later = now + timedelta(hours=12)
    slot = f"{later:%H}:00-{(later + timedelta(hours=1)):%H}:00"
    weekday = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"][
        later.weekday()
    ]
    status, planning = await call(
        http,
        "PUT",
        f"{base}/api/v1/experts/{expert}/planning",
        json={"timezone": "Europe/Rome", "weekly": {weekday: [slot]}},
    )
    assert status == 200 and planning["weekly"] == {weekday: [slot]}, planning
    status, reply = await call(
        http,
        "POST",
        f"{base}/api/v1/experts/{expert}/requests",
        json={"client_phone": "+393330000011"},
    )
    assert status == 409 and reply["reason"] == "outside_hours"
    opening = datetime.fromisoformat(reply["next_opening"])
    assert opening.astimezone(ROME).strftime("%H:%M") == slot[:5]

    # Today only: open all day (a date override), and the request is taken.
    today = now.date().isoformat()
    status, planning = await call(
        http,
        "PUT",
        f"{base}/api/v1/experts/{expert}/planning/days/{today}",
        json={"slots": ["00:00-00:00"]},
    )
    assert status == 200 and planning["days"] == {today: ["00:00-00:00"]}
    status, _ = await call(
        http,
        "POST",
        f"{base}/api/v1/experts/{expert}/requests",
        json={"client_phone": "+393330000011"},
    )
    assert status == 201
    status, planning = await call(
        http, "DELETE", f"{base}/api/v1/experts/{expert}/planning/days/{today}"
    )
    assert status == 200 and planning["days"] == {}


async def test_channels_off_closes_phone(api: Any) -> None:
    engine, http, base = api
    expert = await _expert(engine)
    status, av = await call(
        http, "PUT", f"{base}/api/v1/experts/{expert}/channels", json={"phone": False}
    )
    assert status == 200 and av["channels"] == ["chat", "video"]
    assert av["open"] is False and av["reason"] == "channel_off"
    row = await engine.pool.fetchrow(
        "SELECT channel_phone, channel_chat FROM experts WHERE id = $1", expert
    )
    assert row["channel_phone"] is False and row["channel_chat"] is True


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"timezone": "Mars/Base", "weekly": {}}, "unknown timezone"),
        ({"timezone": "Europe/Rome", "weekly": {"funday": ["09:00-10:00"]}}, "funday"),
        (
            {"timezone": "Europe/Rome", "weekly": {"monday": ["09:00-12:00", "11:00-13:00"]}},
            "overlap",
        ),
        ({"timezone": "Europe/Rome", "weekly": {"monday": ["12:00-12:00"]}}, "empty"),
        ({"timezone": "Europe/Rome", "weekly": {"monday": ["25:00-26:00"]}}, "not a time"),
        ({"timezone": "Europe/Rome"}, "weekly"),
    ],
)
async def test_bad_plannings_get_422(api: Any, body: Any, fragment: str) -> None:
    engine, http, base = api
    expert = await _expert(engine)
    status, reply = await call(http, "PUT", f"{base}/api/v1/experts/{expert}/planning", json=body)
    assert status == 422 and fragment in reply["error"], reply


async def test_unknown_expert_and_bad_date(api: Any) -> None:
    _, http, base = api
    status, _ = await call(http, "GET", f"{base}/api/v1/experts/999/availability")
    assert status == 404
    status, _ = await call(
        http, "PUT", f"{base}/api/v1/experts/999/planning/days/2026-13-01", json={"slots": []}
    )
    assert status == 422
    status, _ = await call(http, "POST", f"{base}/api/v1/experts/999/pause", json={"minutes": 5})
    assert status == 404


async def test_refuse_all_waiting_offers_an_appointment(api: Any) -> None:
    engine, http, base = api
    expert = await _expert(engine)
    status, _ = await call(
        http,
        "PUT",
        f"{base}/api/v1/experts/{expert}/planning",
        json={"timezone": "Europe/Rome", "weekly": {d: ["00:00-00:00"] for d in ("monday",)}},
    )
    assert status == 200
    # Today only: open all day, so the requests are taken whatever today is.
    today = datetime.now(ROME).date().isoformat()
    await call(
        http,
        "PUT",
        f"{base}/api/v1/experts/{expert}/planning/days/{today}",
        json={"slots": ["00:00-00:00"]},
    )
    ids = []
    for n, email in (("1", "marco@example.org"), ("2", "")):
        status, req = await call(
            http,
            "POST",
            f"{base}/api/v1/experts/{expert}/requests",
            json={"client_phone": f"+39333000010{n}", "client_email": email, "language": "it"},
        )
        assert status == 201, req
        ids.append(req["id"])
    status, reply = await call(
        http, "POST", f"{base}/api/v1/experts/{expert}/requests/refuse-waiting"
    )
    assert status == 200 and reply["refused"] == 2
    proposal = datetime.fromisoformat(reply["proposed_start"])
    assert proposal > datetime.now(UTC)
    rows = await engine.pool.fetch(
        "SELECT r.state, r.end_reason, p.proposed_start FROM requests r"
        " JOIN appointment_proposals p ON p.request_id = r.id ORDER BY r.id"
    )
    assert [(r["state"], r["end_reason"]) for r in rows] == [("refused", "refused_at_closing")] * 2
    assert all(r["proposed_start"] == proposal for r in rows)
    mails = await engine.pool.fetch(
        "SELECT to_address, language FROM outbox_emails WHERE kind = 'client_request_refused'"
        " ORDER BY id"
    )
    assert [(m["to_address"], m["language"]) for m in mails] == [
        ("marco@example.org", "it"),
        ("", "it"),
    ]
    status, reply = await call(
        http, "POST", f"{base}/api/v1/experts/{expert}/requests/refuse-waiting"
    )
    assert reply["refused"] == 0
