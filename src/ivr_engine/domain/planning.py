"""When an expert takes calls: weekly planning, date overrides, pause and channels.

Pure: no I/O. Every datetime given or returned is timezone-aware; naive ones raise.

- A slot is a wall-clock stretch in the expert's IANA timezone, start included, end excluded.
  An end at or before the start runs into the next day (22:00-02:00); an end of 00:00 is the
  midnight that ends the day, so 00:00-00:00 is the whole day. Any other start == end is empty.
- Slots of one day must not overlap. Touching slots (10:00-12:00, 12:00-14:00) are kept as
  given and count as one continuous stretch, across midnight too. In the weekly planning a
  slot running past midnight must not overlap the next day's slots either.
- A date override replaces the slots that *start* on that local date. A slot of the day before
  that runs past midnight still runs into an overridden date: it belongs to the day it started
  on. The edits of today (``domain.today``) override that day too when they must cut one.
- DST: a wall time means the first instant at which the expert's clock reads that time or a
  later one. A time that happens twice (fall-back) is its first occurrence; a time that does
  not exist (spring-forward) is the instant the clocks jump. In Europe/Rome on 2026-03-29 a
  slot 01:30-02:30 lasts 30 min and 02:10-02:50 does not happen; on 2026-10-25 a slot
  01:00-04:00 lasts 4 h. The rule keeps time order, so no slot can end before it starts.
- The pause counts real time: paused while now < paused_until.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from itertools import pairwise
from types import MappingProxyType
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ivr_engine.errors import PlanningError

MIDNIGHT: Final = time(0)
DAY: Final = timedelta(days=1)
WEEKDAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DEFAULT_PAUSE_MINUTES: Final = 20
HORIZON_DAYS: Final = 14
_HHMM: Final = re.compile(r"([0-9]{1,2}):?([0-9]{2})")


class Channel(StrEnum):
    PHONE = "phone"
    CHAT = "chat"
    VIDEO = "video"


ALL_CHANNELS: Final = frozenset(Channel)


class Reason(StrEnum):
    OPEN = "open"
    OUTSIDE_HOURS = "outside_hours"
    PAUSED = "paused"
    CHANNEL_OFF = "channel_off"


def check_time(value: time) -> None:
    if not isinstance(value, time) or value.tzinfo is not None:
        raise PlanningError(f"slot times are wall-clock times without timezone, got {value!r}")
    if value.second or value.microsecond:
        raise PlanningError(f"slot times are whole minutes, got {value.isoformat()}")


@dataclass(frozen=True)
class Slot:
    """[start, end) in wall-clock time, belonging to the day it starts on."""

    start: time
    end: time

    def __post_init__(self) -> None:
        check_time(self.start)
        check_time(self.end)
        if self.start == self.end != MIDNIGHT:
            raise PlanningError(f"slot {self} is empty")

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    @property
    def crosses_midnight(self) -> bool:
        """Runs into the next day (an end of 00:00 closes this day, it does not enter the next)."""
        return self.end < self.start and self.end != MIDNIGHT

    def minutes(self) -> tuple[int, int]:
        """(start, end) in minutes from the start of its day: end > start, at most 24 h later."""
        start = self.start.hour * 60 + self.start.minute
        end = self.end.hour * 60 + self.end.minute
        return start, end if end > start else end + 24 * 60


def parse_hhmm(text: str) -> time:
    """'1830', '18:30', '930' or '9:30' (as typed on a keypad or in a form) -> time(18, 30)."""
    match = _HHMM.fullmatch(text.strip())
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise PlanningError(f"not a time of day: {text!r} (use HHMM, 00:00 to 23:59)")
    return time(int(match[1]), int(match[2]))


def parse_slot(text: str) -> Slot:
    """'09:00-12:30' -> Slot(09:00, 12:30)."""
    start, sep, end = text.partition("-")
    if not sep:
        raise PlanningError(f"not a slot: {text!r} (use HH:MM-HH:MM)")
    return Slot(parse_hhmm(start), parse_hhmm(end))


def load_zone(name: str) -> ZoneInfo:
    if name != "localtime":  # the machine's own zone, whatever it is: never an expert's
        with suppress(ZoneInfoNotFoundError, ValueError, OSError):
            return ZoneInfo(name)
    raise PlanningError(f"unknown timezone {name!r}")


def check_slots(slots: Iterable[Slot], label: str) -> tuple[Slot, ...]:
    """The slots of one day sorted by start; PlanningError if two of them overlap."""
    ordered = tuple(sorted(slots, key=Slot.minutes))
    for before, after in pairwise(ordered):
        if after.minutes()[0] < before.minutes()[1]:
            raise PlanningError(f"{label}: slots {before} and {after} overlap")
    return ordered


def check_overrides(overrides: Mapping[date, Iterable[Slot]]) -> dict[date, tuple[Slot, ...]]:
    checked = {}
    for day, slots in overrides.items():
        if isinstance(day, datetime) or not isinstance(day, date):
            raise PlanningError(f"overrides are keyed by local date, got {day!r}")
        checked[day] = check_slots(slots, day.isoformat())
    return checked


@dataclass(frozen=True)
class WeeklyPlanning:
    """Slots per weekday (0 = monday) in `timezone`; checked when built, so always valid."""

    timezone: str
    days: Mapping[int, tuple[Slot, ...]]
    zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "zone", load_zone(self.timezone))
        days: dict[int, tuple[Slot, ...]] = {}
        for weekday, slots in self.days.items():
            if weekday not in range(7):
                raise PlanningError(f"weekday {weekday!r} is not 0 (monday) to 6 (sunday)")
            days[weekday] = check_slots(slots, WEEKDAYS[weekday])
        for weekday, slots in days.items():
            following = (weekday + 1) % 7
            late = slots[-1:] if slots and slots[-1].crosses_midnight else ()  # only the last can
            early = days.get(following, ())[:1]
            for slot, other in zip(late, early, strict=False):
                if other.minutes()[0] < slot.minutes()[1] - 24 * 60:
                    raise PlanningError(
                        f"{WEEKDAYS[weekday]}: slot {slot} runs into "
                        f"{WEEKDAYS[following]}'s slot {other}"
                    )
        object.__setattr__(self, "days", MappingProxyType(days))


Overrides = Mapping[date, tuple[Slot, ...]]


def slots_on(planning: WeeklyPlanning, overrides: Overrides, day: date) -> tuple[Slot, ...]:
    """The slots that start on local `day`: its override if it has one, else the weekly ones."""
    if day in overrides:
        return tuple(sorted(overrides[day], key=Slot.minutes))
    return planning.days.get(day.weekday(), ())


def aware(name: str, value: datetime) -> datetime:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise PlanningError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(UTC)


def _instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The first instant at which the clock in `zone` reads `at` on `day`, or a later time."""
    wall = datetime.combine(day, at.replace(fold=0))
    first = wall.replace(tzinfo=zone).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first  # fold=0 is the first occurrence of a time that happens twice
    # The clocks jumped over `wall`. Read with the offset after the jump it is an instant before
    # the jump, with the offset before it one after: bisect between them to the second.
    before = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    after = int(first.timestamp())
    old_offset = datetime.fromtimestamp(before, zone).utcoffset()
    while after - before > 1:
        middle = (before + after) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == old_offset:
            before = middle
        else:
            after = middle
    return datetime.fromtimestamp(after, UTC)


_Span = tuple[datetime, datetime]


def _spans(planning: WeeklyPlanning, overrides: Overrides, now: datetime, days: int) -> list[_Span]:
    """Open stretches in UTC, touching slots merged, from the day before `now` for `days` days."""
    first = now.astimezone(planning.zone).date() - DAY
    raw = []
    for day in (first + n * DAY for n in range(days + 1)):
        for slot in slots_on(planning, overrides, day):
            end_day = day + DAY if slot.end <= slot.start else day
            raw.append(
                (
                    _instant(day, slot.start, planning.zone),
                    _instant(end_day, slot.end, planning.zone),
                )
            )
    merged: list[_Span] = []
    for start, end in sorted(raw):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        elif start < end:  # a slot inside a spring-forward gap does not happen
            merged.append((start, end))
    return merged


@dataclass(frozen=True)
class Availability:
    open: bool
    reason: Reason
    # End of the open stretch (touching slots merged); None when closed, or when it lasts past
    # the horizon.
    closes_at: datetime | None
    # First instant from now on at which the expert is open (now itself when open); None when
    # the channel is off or nothing opens within the horizon.
    next_opening: datetime | None


def availability(
    planning: WeeklyPlanning,
    overrides: Overrides,
    now: datetime,
    *,
    paused_until: datetime | None,
    channels: frozenset[Channel],
    channel: Channel = Channel.PHONE,
    horizon_days: int = HORIZON_DAYS,
) -> Availability:
    """Is the expert open on `channel` at `now`? Datetimes returned are in the expert's zone.

    When several reasons apply the most lasting one wins: channel off, outside hours, paused.
    """
    now = aware("now", now)
    paused = paused_until is not None and now < aware("paused_until", paused_until)
    if channel not in channels:
        return Availability(False, Reason.CHANNEL_OFF, None, None)
    limit = now + horizon_days * DAY
    spans = _spans(planning, overrides, now, horizon_days + 3)
    current = next((span for span in spans if span[0] <= now < span[1]), None)
    if current is not None and not paused:
        closes_at = current[1].astimezone(planning.zone) if current[1] <= limit else None
        return Availability(True, Reason.OPEN, closes_at, now.astimezone(planning.zone))
    earliest = max(now, paused_until) if paused and paused_until is not None else now
    opening = next((max(start, earliest) for start, end in spans if end > earliest), None)
    reason = Reason.OUTSIDE_HOURS if current is None else Reason.PAUSED
    if opening is None or opening > limit:
        return Availability(False, reason, None, None)
    return Availability(False, reason, None, opening.astimezone(planning.zone))


def pause(now: datetime, minutes: int = DEFAULT_PAUSE_MINUTES) -> datetime:
    """paused_until for a pause starting now, in UTC: an aware datetime's own `+` adds wall
    time, which would be off by an hour across a DST change."""
    if minutes <= 0:
        raise PlanningError(f"a pause lasts at least a minute, got {minutes}")
    return aware("now", now) + timedelta(minutes=minutes)


def next_slots(
    planning: WeeklyPlanning,
    overrides: Overrides,
    after: datetime,
    count: int,
    *,
    horizon_days: int = HORIZON_DAYS,
) -> list[datetime]:
    """Starts of the next `count` open stretches at or after `after`, to offer appointments."""
    after = aware("after", after)
    if count < 0:
        raise PlanningError(f"count must not be negative, got {count}")
    limit = after + horizon_days * DAY
    spans = _spans(planning, overrides, after, horizon_days + 3)
    starts = [start.astimezone(planning.zone) for start, _ in spans if after <= start <= limit]
    return starts[:count]
