"""The expert's availability in PostgreSQL: weekly slots, date overrides, pause, channels.

The rules are in ivr_engine.domain.planning; this module only loads and stores their inputs.
The API and the phone menu both change availability through these functions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import asyncpg

from ivr_engine.domain.planning import (
    Availability,
    Channel,
    Overrides,
    Slot,
    WeeklyPlanning,
    availability,
    check_overrides,
    next_slots,
    parse_slot,
)
from ivr_engine.errors import NotFound
from ivr_engine.store import line_tests, waiting

# An expert who never set a planning is within hours all the time.
ALWAYS = (Slot(time(0), time(0)),)


@dataclass(frozen=True)
class ExpertAvailability:
    planning: WeeklyPlanning
    has_planning: bool
    overrides: Overrides
    paused_until: datetime | None
    channels: frozenset[Channel]

    def at(self, now: datetime, channel: Channel = Channel.PHONE) -> Availability:
        return availability(
            self.planning,
            self.overrides,
            now,
            paused_until=self.paused_until,
            channels=self.channels,
            channel=channel,
        )


async def load(conn: asyncpg.Connection | asyncpg.Pool, expert_id: int) -> ExpertAvailability:
    # One round trip (a request's join reads this first). The overrides from two days before
    # today in UTC (yesterday somewhere on Earth) are read, then those before yesterday in
    # the expert's own zone are dropped here: PostgreSQL's zone names are not Python's.
    expert = await conn.fetchrow(
        "SELECT e.timezone, e.paused_until, e.channel_phone, e.channel_chat, e.channel_video,"
        " ARRAY(SELECT ROW(s.weekday, s.start_time, s.end_time) FROM planning_slots s"
        "       WHERE s.expert_id = e.id ORDER BY s.weekday, s.start_time) AS slots,"
        " ARRAY(SELECT ROW(o.day, o.slots) FROM planning_overrides o"
        "       WHERE o.expert_id = e.id AND o.day >= $2) AS overrides"
        " FROM experts e WHERE e.id = $1",
        expert_id,
        datetime.now(UTC).date() - timedelta(days=2),
    )
    if expert is None:
        raise NotFound(f"expert {expert_id} does not exist")
    days: dict[int, list[Slot]] = {}
    for weekday, start, end in expert["slots"]:
        days.setdefault(weekday, []).append(Slot(start, end))
    has_planning = bool(days)
    if not has_planning:
        days = {weekday: list(ALWAYS) for weekday in range(7)}
    weekly = WeeklyPlanning(expert["timezone"], {d: tuple(s) for d, s in days.items()})
    # From yesterday, local to the expert: yesterday's slot may run past midnight into today.
    since = datetime.now(weekly.zone).date() - timedelta(days=1)
    overrides = {
        day: tuple(parse_slot(s) for s in json.loads(slots))
        for day, slots in expert["overrides"]
        if day >= since
    }
    channels = frozenset(
        c
        for c, on in (
            (Channel.PHONE, expert["channel_phone"]),
            (Channel.CHAT, expert["channel_chat"]),
            (Channel.VIDEO, expert["channel_video"]),
        )
        if on
    )
    return ExpertAvailability(
        planning=weekly,
        has_planning=has_planning,
        overrides=check_overrides(overrides),
        paused_until=expert["paused_until"],
        channels=channels,
    )


async def replace_weekly(pool: asyncpg.Pool, expert_id: int, planning: WeeklyPlanning) -> None:
    async with pool.acquire() as conn, conn.transaction():
        if (
            await conn.fetchval(
                "UPDATE experts SET timezone = $2 WHERE id = $1 RETURNING id",
                expert_id,
                planning.timezone,
            )
            is None
        ):
            raise NotFound(f"expert {expert_id} does not exist")
        await conn.execute("DELETE FROM planning_slots WHERE expert_id = $1", expert_id)
        await conn.executemany(
            "INSERT INTO planning_slots (expert_id, weekday, start_time, end_time)"
            " VALUES ($1, $2, $3, $4)",
            [
                (expert_id, weekday, slot.start, slot.end)
                for weekday, slots in planning.days.items()
                for slot in slots
            ],
        )


async def set_override(
    pool: asyncpg.Pool,
    expert_id: int,
    day: date,
    slots: tuple[Slot, ...] | None,
    *,
    line_test_hours: float = 0.0,
) -> None:
    """Replace the slots of one local date; None removes the override. With
    ``line_test_hours``, a change that opens the expert now needs a recent passed line test."""
    if line_test_hours > 0:
        now = datetime.now(UTC)
        before = await load(pool, expert_id)
        after = dict(before.overrides)
        if slots is None:
            after.pop(day, None)
        else:
            after[day] = slots
        if not before.at(now).open and replace(before, overrides=after).at(now).open:
            await line_tests.require_recent_pass(pool, expert_id, line_test_hours, now)
    async with pool.acquire() as conn, conn.transaction():
        await _exists(conn, expert_id)
        if slots is None:
            await conn.execute(
                "DELETE FROM planning_overrides WHERE expert_id = $1 AND day = $2",
                expert_id,
                day,
            )
            return
        await conn.execute(
            "INSERT INTO planning_overrides (expert_id, day, slots) VALUES ($1, $2, $3::jsonb)"
            " ON CONFLICT (expert_id, day) DO UPDATE SET slots = EXCLUDED.slots",
            expert_id,
            day,
            json.dumps([str(s) for s in slots]),
        )


async def require_test_to_end_pause(
    pool: asyncpg.Pool, expert_id: int, line_test_hours: float
) -> None:
    """Ending the pause of an expert paused now needs, with ``line_test_hours``, a recent
    passed line test (LineTestRequired); without a pause there is nothing to end."""
    if line_test_hours <= 0:
        return
    now = datetime.now(UTC)
    paused = await pool.fetchval("SELECT paused_until FROM experts WHERE id = $1", expert_id)
    if paused is not None and paused > now:
        await line_tests.require_recent_pass(pool, expert_id, line_test_hours, now)


async def set_pause(
    pool: asyncpg.Pool, expert_id: int, until: datetime | None, *, line_test_hours: float = 0.0
) -> None:
    """Pause until ``until``; None ends the pause, which with ``line_test_hours`` needs a
    recent passed line test (LineTestRequired) when the expert is paused now."""
    if until is None:
        await require_test_to_end_pause(pool, expert_id, line_test_hours)
    if (
        await pool.fetchval(
            "UPDATE experts SET paused_until = $2 WHERE id = $1 RETURNING id", expert_id, until
        )
        is None
    ):
        raise NotFound(f"expert {expert_id} does not exist")


async def set_channels(
    pool: asyncpg.Pool, expert_id: int, channels: dict[str, bool], *, line_test_hours: float = 0.0
) -> None:
    """Switch channels; switching the phone line on, with ``line_test_hours``, needs a
    recent passed line test (LineTestRequired)."""
    if channels.get("phone") and line_test_hours > 0:
        on = await pool.fetchval("SELECT channel_phone FROM experts WHERE id = $1", expert_id)
        if on is False:
            await line_tests.require_recent_pass(
                pool, expert_id, line_test_hours, datetime.now(UTC)
            )
    if (
        await pool.fetchval(
            "UPDATE experts SET channel_phone = coalesce($2, channel_phone),"
            " channel_chat = coalesce($3, channel_chat),"
            " channel_video = coalesce($4, channel_video) WHERE id = $1 RETURNING id",
            expert_id,
            channels.get("phone"),
            channels.get("chat"),
            channels.get("video"),
        )
        is None
    ):
        raise NotFound(f"expert {expert_id} does not exist")


async def _exists(conn: asyncpg.Connection, expert_id: int) -> None:
    if not await conn.fetchval("SELECT 1 FROM experts WHERE id = $1", expert_id):
        raise NotFound(f"expert {expert_id} does not exist")


def describe(av: ExpertAvailability, now: datetime) -> dict[str, Any]:
    """The availability as the API shows it."""
    state = av.at(now)
    return {
        "open": state.open,
        "reason": state.reason.value,
        "closes_at": state.closes_at.isoformat() if state.closes_at else None,
        "next_opening": state.next_opening.isoformat() if state.next_opening else None,
        "paused_until": av.paused_until.isoformat() if av.paused_until else None,
        "channels": sorted(c.value for c in av.channels),
        "timezone": av.planning.timezone,
        "has_planning": av.has_planning,
    }


async def refuse_all(pool: asyncpg.Pool, expert_id: int) -> tuple[int, datetime | None]:
    """At closing: refuse every waiting client, offering the next opening as an appointment
    (an expert with no planning has none to offer). The API and the phone menu both use it."""
    av = await load(pool, expert_id)
    now = datetime.now(UTC)
    starts = next_slots(av.planning, av.overrides, now, 1) if av.has_planning else []
    proposal = starts[0] if starts else None
    return await waiting.refuse_all(pool, expert_id, proposal), proposal
