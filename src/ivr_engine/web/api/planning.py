"""The JSON API of an expert's availability (same bearer token as the rest of /api/v1).

GET    /api/v1/experts/{id}/availability            open now? why not? next opening
GET    /api/v1/experts/{id}/planning                weekly slots, timezone, overrides
PUT    /api/v1/experts/{id}/planning                {"timezone", "weekly": {"monday": [...]}}
PUT    /api/v1/experts/{id}/planning/days/{date}    {"slots": [...]}: that date only ([] = closed)
DELETE /api/v1/experts/{id}/planning/days/{date}    back to the weekly slots
POST   /api/v1/experts/{id}/pause                   {"minutes": 20} (default IVR_PAUSE_MINUTES)
DELETE /api/v1/experts/{id}/pause                   return available
PUT    /api/v1/experts/{id}/channels                {"phone": true, "chat": false, "video": true}
PUT    /api/v1/experts/{id}/pin                     {"pin": "482913"}: the phone menu PIN
POST   /api/v1/experts/{id}/requests/refuse-waiting  refuse all waiting, offer an appointment
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ivr_engine.domain.planning import WEEKDAYS, WeeklyPlanning, check_slots, parse_slot, pause
from ivr_engine.store import pins
from ivr_engine.store import planning as store
from ivr_engine.web.deps import DEPS
from ivr_engine.web.http import error, path_int, read_body


class PlanningBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timezone: str = Field(min_length=1, max_length=60)
    weekly: dict[str, list[str]]


class DayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slots: list[str]


class PauseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    minutes: int | None = Field(None, ge=1, le=24 * 60)


class PinBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pin: str = Field(pattern=r"^[0-9]{6,8}$", description="6 to 8 digits")


class ChannelsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone: bool | None = None
    chat: bool | None = None
    video: bool | None = None


def _pool(request: web.Request) -> asyncpg.Pool:
    return request.app[DEPS].pool


def _line_test_hours(request: web.Request) -> float:
    """IVR_LINE_TEST_REQUIRED_HOURS: going available needs a passed line test this recent."""
    return request.app[DEPS].settings.line_test_required_hours


def _day(request: web.Request) -> date:
    try:
        return date.fromisoformat(request.match_info["day"])
    except ValueError:
        raise web.HTTPUnprocessableEntity(
            text='{"error": "the date must be YYYY-MM-DD"}', content_type="application/json"
        ) from None


async def get_availability(request: web.Request) -> web.Response:
    av = await store.load(_pool(request), path_int(request, "expert_id"))
    return web.json_response(store.describe(av, datetime.now(UTC)))


async def get_planning(request: web.Request) -> web.Response:
    av = await store.load(_pool(request), path_int(request, "expert_id"))
    weekly = {WEEKDAYS[d]: [str(s) for s in slots] for d, slots in sorted(av.planning.days.items())}
    return web.json_response(
        {
            "timezone": av.planning.timezone,
            "has_planning": av.has_planning,
            "weekly": weekly if av.has_planning else {},
            "days": {d.isoformat(): [str(s) for s in slots] for d, slots in av.overrides.items()},
        }
    )


async def put_planning(request: web.Request) -> web.Response:
    expert_id = path_int(request, "expert_id")
    body: PlanningBody = await read_body(request, PlanningBody)
    unknown = set(body.weekly) - set(WEEKDAYS)
    if unknown:
        return error(422, f"unknown weekday(s): {', '.join(sorted(unknown))}")
    planning = WeeklyPlanning(
        body.timezone,
        {
            WEEKDAYS.index(d): tuple(parse_slot(s) for s in slots)
            for d, slots in body.weekly.items()
        },
    )
    await store.replace_weekly(_pool(request), expert_id, planning)
    return await get_planning(request)


async def put_day(request: web.Request) -> web.Response:
    expert_id = path_int(request, "expert_id")
    day = _day(request)
    body: DayBody = await read_body(request, DayBody)
    slots = tuple(parse_slot(s) for s in body.slots)
    await store.set_override(
        _pool(request),
        expert_id,
        day,
        check_slots(slots, day.isoformat()),
        line_test_hours=_line_test_hours(request),
    )
    return await get_planning(request)


async def delete_day(request: web.Request) -> web.Response:
    await store.set_override(
        _pool(request),
        path_int(request, "expert_id"),
        _day(request),
        None,
        line_test_hours=_line_test_hours(request),
    )
    return await get_planning(request)


async def post_pause(request: web.Request) -> web.Response:
    expert_id = path_int(request, "expert_id")
    body: PauseBody = await read_body(request, PauseBody) if request.can_read_body else PauseBody()
    minutes = body.minutes or request.app[DEPS].settings.pause_minutes
    await store.set_pause(_pool(request), expert_id, pause(datetime.now(UTC), minutes))
    return await get_availability(request)


async def delete_pause(request: web.Request) -> web.Response:
    await store.set_pause(
        _pool(request),
        path_int(request, "expert_id"),
        None,
        line_test_hours=_line_test_hours(request),
    )
    return await get_availability(request)


async def put_channels(request: web.Request) -> web.Response:
    expert_id = path_int(request, "expert_id")
    body: ChannelsBody = await read_body(request, ChannelsBody)
    await store.set_channels(
        _pool(request),
        expert_id,
        body.model_dump(exclude_none=True),
        line_test_hours=_line_test_hours(request),
    )
    return await get_availability(request)


async def refuse_waiting(request: web.Request) -> web.Response:
    """At closing: refuse every waiting client at once, offering the next opening."""
    expert_id = path_int(request, "expert_id")
    count, proposal = await request.app[DEPS].actions.refuse_all(expert_id)
    return web.json_response(
        {"refused": count, "proposed_start": proposal.isoformat() if proposal else None}
    )


async def put_pin(request: web.Request) -> web.Response:
    """Set the PIN of the phone menu; it is stored only as a scrypt hash."""
    expert_id = path_int(request, "expert_id")
    body: PinBody = await read_body(request, PinBody)
    await pins.set_pin(_pool(request), expert_id, body.pin)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    base = "/api/v1/experts/{expert_id}"
    app.router.add_get(f"{base}/availability", get_availability)
    app.router.add_get(f"{base}/planning", get_planning)
    app.router.add_put(f"{base}/planning", put_planning)
    app.router.add_put(f"{base}/planning/days/{{day}}", put_day)
    app.router.add_delete(f"{base}/planning/days/{{day}}", delete_day)
    app.router.add_post(f"{base}/pause", post_pause)
    app.router.add_delete(f"{base}/pause", delete_pause)
    app.router.add_put(f"{base}/channels", put_channels)
    app.router.add_put(f"{base}/pin", put_pin)
    app.router.add_post(f"{base}/requests/refuse-waiting", refuse_waiting)
