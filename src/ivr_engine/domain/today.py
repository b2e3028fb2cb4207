"""Edits of today's planning: stop now, available now until…, end today at…

Pure: no I/O; the rules of slots, overrides and DST are those of ``domain.planning``.
Edits work to the minute, in wall time: "now" is the current minute, and what was before it
is kept as it was. They return only the override dates to store (today, sometimes yesterday).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from ivr_engine.domain.planning import (
    DAY,
    MIDNIGHT,
    Overrides,
    Slot,
    WeeklyPlanning,
    aware,
    check_slots,
    check_time,
    slots_on,
)
from ivr_engine.errors import PlanningError

# Edits of today's planning, in naive local wall time: (day the slot belongs to, start, end).
_Piece = tuple[date, datetime, datetime]


def _wall_now(planning: WeeklyPlanning, now: datetime) -> datetime:
    local = aware("now", now).astimezone(planning.zone)
    return local.replace(tzinfo=None, second=0, microsecond=0, fold=0)


def _pieces(planning: WeeklyPlanning, overrides: Overrides, today: date) -> list[_Piece]:
    pieces = []
    for day in (today - DAY, today):
        midnight = datetime.combine(day, MIDNIGHT)
        for slot in slots_on(planning, overrides, day):
            start, end = slot.minutes()
            pieces.append(
                (day, midnight + timedelta(minutes=start), midnight + timedelta(minutes=end))
            )
    return pieces


def _future(planning: WeeklyPlanning, overrides: Overrides, wall: datetime) -> list[_Piece]:
    pieces = _pieces(planning, overrides, wall.date())
    return sorted(((d, max(s, wall), e) for d, s, e in pieces if e > wall), key=lambda p: p[1])


def _fits(start: datetime, end: datetime) -> bool:
    return end - start < DAY or (end - start == DAY and start.time() == MIDNIGHT)


def _rewrite(
    planning: WeeklyPlanning, overrides: Overrides, wall: datetime, future: list[_Piece]
) -> dict[date, tuple[Slot, ...]]:
    """Keep what was planned before `wall`, put `future` after it: the overrides to store."""
    today = wall.date()
    runs: dict[date, list[tuple[datetime, datetime]]] = {today - DAY: [], today: []}
    for day, start, end in _pieces(planning, overrides, today):
        if start < wall:
            runs[day].append((start, min(end, wall)))
    for day, start, end in future:
        # A slot cut at `wall` and continued after it becomes one slot again when it can.
        joined = next((run for run in runs[day] if run[1] == start == wall), None)
        if joined is not None and _fits(joined[0], end):
            runs[day].remove(joined)
            runs[day].append((joined[0], end))
        else:  # every future piece starts today
            runs[start.date()].append((start, end))
    changed = {}
    for day, spans in runs.items():
        slots = check_slots((Slot(s.time(), e.time()) for s, e in spans), day.isoformat())
        if day == today or slots != slots_on(planning, overrides, day):
            changed[day] = slots
    return changed


def set_today_end(
    planning: WeeklyPlanning, overrides: Overrides, now: datetime, end: time
) -> dict[date, tuple[Slot, ...]]:
    """Stop at `end` today (00:00: at midnight): the last slot still to come is cut or extended
    to `end`, later ones dropped; with none left, open from now until `end`."""
    check_time(end)
    wall = _wall_now(planning, now)
    stop = datetime.combine(wall.date() + DAY if end == MIDNIGHT else wall.date(), end)
    if stop <= wall:
        raise PlanningError(f"end {end:%H:%M} is not after now ({wall:%H:%M})")
    ahead = [(d, s, min(e, stop)) for d, s, e in _future(planning, overrides, wall) if s < stop]
    if ahead:
        ahead[-1] = (ahead[-1][0], ahead[-1][1], stop)
    return _rewrite(planning, overrides, wall, ahead or [(wall.date(), wall, stop)])


def available_now(
    planning: WeeklyPlanning, overrides: Overrides, now: datetime, until: time
) -> dict[date, tuple[Slot, ...]]:
    """Open from now until the next `until` (maybe after midnight), then as planned."""
    check_time(until)
    wall = _wall_now(planning, now)
    if until == wall.time():
        raise PlanningError(f"until {until:%H:%M} is now: nothing to open")
    stop = datetime.combine(wall.date(), until)
    stop += DAY if stop <= wall else timedelta(0)
    later = [piece for piece in _future(planning, overrides, wall) if piece[1] >= stop]
    return _rewrite(planning, overrides, wall, [(wall.date(), wall, stop), *later])


def stop_now(
    planning: WeeklyPlanning, overrides: Overrides, now: datetime
) -> dict[date, tuple[Slot, ...]]:
    """Closed from now until the end of today's slots (tomorrow's planning still applies)."""
    wall = _wall_now(planning, now)
    return _rewrite(planning, overrides, wall, [])
