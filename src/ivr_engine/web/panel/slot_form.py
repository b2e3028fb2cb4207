"""Slots as an expert types them in a form ("09:00-12:00, 15:00-19:00"): read with the
domain's rules (domain/planning.py), each problem turned into the message shown next to
the field it belongs to."""

from __future__ import annotations

import re

from aiohttp import web

from ivr_engine.domain.planning import Slot, WeeklyPlanning, check_slots, parse_slot
from ivr_engine.errors import PlanningError
from ivr_engine.web.panel.render import text


def show_slots(slots: tuple[Slot, ...]) -> str:
    return ", ".join(str(s) for s in slots)


def read_slots(request: web.Request, raw: str) -> tuple[tuple[Slot, ...], str | None]:
    """The slots typed in one field, sorted, or the error to show next to it."""
    slots = []
    for piece in (p.strip() for p in re.split(r"[,;]", raw)):
        if not piece:
            continue
        try:
            slots.append(parse_slot(piece))
        except PlanningError:
            return (), text(request, "avail.error.slot", slot=piece)
    try:
        return check_slots(slots, ""), None
    except PlanningError:
        return (), text(request, "avail.error.overlap")


def runs_over(days: dict[int, tuple[Slot, ...]]) -> int | None:
    """The weekday whose last slot runs past midnight into the next day's first one.

    Asks WeeklyPlanning itself, one pair of days at a time, so the rule stays in one place.
    """
    for day, slots in sorted(days.items()):
        following = (day + 1) % 7
        try:
            WeeklyPlanning("UTC", {day: slots, following: days.get(following, ())})
        except PlanningError:
            return day
    return None
