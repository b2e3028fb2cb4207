"""Availability rules of an expert: planning, overrides, pause, channels, DST, edits."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ivr_engine.domain.planning import (
    ALL_CHANNELS,
    Availability,
    Channel,
    Overrides,
    Reason,
    Slot,
    WeeklyPlanning,
    availability,
    check_overrides,
    check_slots,
    next_slots,
    parse_hhmm,
    parse_slot,
    pause,
    slots_on,
)
from ivr_engine.domain.today import available_now, set_today_end, stop_now
from ivr_engine.errors import IvrError, PlanningError

ROME = ZoneInfo("Europe/Rome")
MON, TUE, WED, SUN = 0, 1, 2, 6
# A week without DST changes: Monday 2026-03-02 … Sunday 2026-03-08.
MONDAY = date(2026, 3, 2)
SPRING_FORWARD = date(2026, 3, 29)  # Rome: 02:00 CET -> 03:00 CEST
FALL_BACK = date(2026, 10, 25)  # Rome: 03:00 CEST -> 02:00 CET
TICK = timedelta(microseconds=1)


def slots(*texts: str) -> tuple[Slot, ...]:
    return tuple(parse_slot(text) for text in texts)


def rome(day: date, hour: int = 0, minute: int = 0, second: int = 0, fold: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=ROME, fold=fold)


def real(moment: datetime) -> datetime:
    # Subtracting two datetimes of the same zone gives their wall-clock difference: use UTC.
    return moment.astimezone(UTC)


def week(**days: tuple[Slot, ...]) -> WeeklyPlanning:
    names = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    return WeeklyPlanning("Europe/Rome", {names.index(name): s for name, s in days.items()})


def state(
    planning: WeeklyPlanning,
    now: datetime,
    overrides: Overrides | None = None,
    *,
    paused_until: datetime | None = None,
    channels: frozenset[Channel] = ALL_CHANNELS,
    channel: Channel = Channel.PHONE,
) -> Availability:
    return availability(
        planning,
        overrides or {},
        now,
        paused_until=paused_until,
        channels=channels,
        channel=channel,
    )


def is_open(planning: WeeklyPlanning, now: datetime, overrides: Overrides | None = None) -> bool:
    return state(planning, now, overrides).open


OFFICE = week(
    mon=slots("09:00-12:00", "14:00-18:00"),
    tue=slots("09:00-12:00", "14:00-18:00"),
    wed=slots("09:00-12:00", "14:00-18:00"),
)
NIGHTS = week(sun=slots("22:00-02:00"), mon=slots("09:00-12:00", "12:00-14:00"))


# --- parsing and validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1830", time(18, 30)), ("18:30", time(18, 30)), ("930", time(9, 30)), ("0000", time(0))],
)
def test_parse_hhmm(text: str, expected: time) -> None:
    assert parse_hhmm(text) == expected


@pytest.mark.parametrize("text", ["2460", "2400", "1260", "abc", "", "12345", "12:3", "１２３０"])
def test_parse_hhmm_refuses(text: str) -> None:
    with pytest.raises(PlanningError, match="not a time of day"):
        parse_hhmm(text)


def test_planning_error_is_a_value_error_of_the_project() -> None:
    assert issubclass(PlanningError, ValueError)
    assert issubclass(PlanningError, IvrError)


def test_empty_slot_is_refused_but_midnight_to_midnight_is_the_whole_day() -> None:
    with pytest.raises(PlanningError, match=r"^slot 12:00-12:00 is empty$"):
        Slot(time(12), time(12))
    whole = Slot(time(0), time(0))
    assert whole.minutes() == (0, 24 * 60)
    assert not whole.crosses_midnight


def test_crosses_midnight() -> None:
    assert parse_slot("22:00-02:00").crosses_midnight
    assert not parse_slot("22:00-00:00").crosses_midnight  # ends with the day
    assert not parse_slot("09:00-12:00").crosses_midnight


@pytest.mark.parametrize(
    "bad", [time(9, 0, 30), time(9, 0, 0, 1), time(9, tzinfo=UTC), "09:00"], ids=repr
)
def test_slot_times_are_naive_whole_minutes(bad: object) -> None:
    with pytest.raises(PlanningError, match="slot times"):
        Slot(bad, time(12))  # type: ignore[arg-type]


def test_overlapping_slots_are_refused() -> None:
    with pytest.raises(PlanningError, match=r"^monday: slots 09:00-12:00 and 11:00-13:00 overlap$"):
        week(mon=slots("11:00-13:00", "09:00-12:00"))
    with pytest.raises(PlanningError, match="overlap"):
        week(tue=slots("00:00-00:00", "10:00-11:00"))


def test_touching_slots_are_accepted_and_sorted() -> None:
    planning = week(mon=slots("12:00-14:00", "10:00-12:00", "20:00-00:00"))
    assert planning.days[MON] == slots("10:00-12:00", "12:00-14:00", "20:00-00:00")


def test_a_slot_past_midnight_must_not_overlap_the_next_day() -> None:
    with pytest.raises(PlanningError, match=r"^sunday: slot 22:00-02:00 runs into monday's slot"):
        week(sun=slots("22:00-02:00"), mon=slots("01:00-03:00"))
    week(sun=slots("22:00-02:00"), mon=slots("02:00-03:00"))  # touching is fine


def test_unknown_timezone() -> None:
    with pytest.raises(PlanningError, match=r"^unknown timezone 'Mars/Base'$"):
        WeeklyPlanning("Mars/Base", {})
    for name in ("", "../etc/passwd", "Europe", "localtime"):
        with pytest.raises(PlanningError, match="unknown timezone"):
            WeeklyPlanning(name, {})


def test_weekday_out_of_range() -> None:
    with pytest.raises(PlanningError, match="weekday 7"):
        WeeklyPlanning("Europe/Rome", {7: ()})


def test_check_overrides() -> None:
    day = MONDAY
    assert check_overrides({day: slots("14:00-15:00", "09:00-10:00")}) == {
        day: slots("09:00-10:00", "14:00-15:00")
    }
    with pytest.raises(PlanningError, match=r"^2026-03-02: slots"):
        check_overrides({day: slots("09:00-10:00", "09:30-11:00")})
    with pytest.raises(PlanningError, match="local date"):
        check_overrides({datetime(2026, 3, 2, tzinfo=UTC): ()})
    assert check_slots((), "monday") == ()


@pytest.mark.parametrize("naive", ["now", "paused_until"])
def test_naive_datetimes_are_refused(naive: str) -> None:
    aware = rome(MONDAY, 10)
    times = {"now": aware, "paused_until": aware} | {naive: aware.replace(tzinfo=None)}
    with pytest.raises(PlanningError, match=f"{naive} must be a timezone-aware datetime"):
        availability(
            OFFICE, {}, times["now"], paused_until=times["paused_until"], channels=ALL_CHANNELS
        )


def test_naive_datetimes_are_refused_everywhere() -> None:
    naive = datetime(2026, 3, 2, 10)
    with pytest.raises(PlanningError, match="after must be"):
        next_slots(OFFICE, {}, naive, 3)
    with pytest.raises(PlanningError, match="now must be"):
        pause(naive)
    for edit in (stop_now, lambda p, o, n: set_today_end(p, o, n, time(20))):
        with pytest.raises(PlanningError, match="now must be"):
            edit(OFFICE, {}, naive)


# --- open or closed ---------------------------------------------------------------------------


def test_start_is_included_end_is_excluded() -> None:
    assert not is_open(OFFICE, rome(MONDAY, 9) - TICK)
    assert is_open(OFFICE, rome(MONDAY, 9))
    assert is_open(OFFICE, rome(MONDAY, 12) - TICK)
    assert not is_open(OFFICE, rome(MONDAY, 12))
    assert state(OFFICE, rome(MONDAY, 10)).closes_at == rome(MONDAY, 12)


def test_touching_slots_are_one_stretch() -> None:
    now = rome(MONDAY, 11, 59)
    assert state(NIGHTS, now) == Availability(True, Reason.OPEN, rome(MONDAY, 14), now)
    assert is_open(NIGHTS, rome(MONDAY, 12))


def test_a_slot_crossing_midnight_runs_into_the_next_day() -> None:
    assert is_open(NIGHTS, rome(MONDAY, 1))  # Sunday's 22:00-02:00, in the first week too
    assert state(NIGHTS, rome(MONDAY, 1)).closes_at == rome(MONDAY, 2)
    assert not is_open(NIGHTS, rome(MONDAY, 2))
    assert is_open(NIGHTS, rome(MONDAY + timedelta(days=6), 23))


def test_an_end_of_midnight_closes_with_the_day() -> None:
    planning = week(mon=slots("20:00-00:00"), tue=slots("00:00-01:00"))
    assert is_open(planning, rome(MONDAY, 23, 59, 59))
    assert state(planning, rome(MONDAY, 21)).closes_at == rome(MONDAY + timedelta(days=1), 1)
    assert not is_open(week(mon=slots("20:00-00:00")), rome(MONDAY + timedelta(days=1)))


def test_open_all_week_never_closes_within_the_horizon() -> None:
    always = WeeklyPlanning("Europe/Rome", {d: slots("00:00-00:00") for d in range(7)})
    now = rome(MONDAY, 3)
    assert state(always, now) == Availability(True, Reason.OPEN, None, now)


# --- overrides --------------------------------------------------------------------------------


def test_a_closed_day_override() -> None:
    closed = {MONDAY: ()}
    assert not is_open(OFFICE, rome(MONDAY, 10), closed)
    assert state(OFFICE, rome(MONDAY, 10), closed).next_opening == rome(MONDAY + timedelta(1), 9)


def test_an_override_with_other_hours() -> None:
    other = {MONDAY: slots("07:00-08:00", "19:00-23:30")}
    assert slots_on(OFFICE, other, MONDAY) == other[MONDAY]
    assert slots_on(OFFICE, other, MONDAY + timedelta(1)) == OFFICE.days[TUE]
    assert is_open(OFFICE, rome(MONDAY, 7, 30), other)
    assert not is_open(OFFICE, rome(MONDAY, 10), other)
    assert is_open(OFFICE, rome(MONDAY, 23), other)


def test_an_override_of_today_leaves_the_other_weeks_alone() -> None:
    today_only = {MONDAY: slots("10:00-11:00")}
    assert not is_open(OFFICE, rome(MONDAY, 9, 30), today_only)
    assert is_open(OFFICE, rome(MONDAY + timedelta(days=7), 9, 30), today_only)


def test_yesterdays_slot_still_runs_into_an_overridden_day() -> None:
    closed_monday = {MONDAY: ()}
    assert is_open(NIGHTS, rome(MONDAY, 1), closed_monday)
    assert not is_open(NIGHTS, rome(MONDAY, 10), closed_monday)
    # To close it, override the day it belongs to.
    assert not is_open(NIGHTS, rome(MONDAY, 1), {MONDAY - timedelta(1): ()})


# --- pause and channels -----------------------------------------------------------------------


def test_pause_then_expired_at_exactly_paused_until() -> None:
    now = rome(MONDAY, 10)
    until = pause(now)
    assert until == now + timedelta(minutes=20)
    assert state(OFFICE, now, paused_until=until) == Availability(False, Reason.PAUSED, None, until)
    assert not state(OFFICE, until - TICK, paused_until=until).open
    assert state(OFFICE, until, paused_until=until).open
    assert state(OFFICE, now, paused_until=None).open


def test_a_pause_ending_after_the_slot_waits_for_the_next_one() -> None:
    until = pause(rome(MONDAY, 11, 50), minutes=30)
    paused = state(OFFICE, rome(MONDAY, 11, 55), paused_until=until)
    assert (paused.reason, paused.next_opening) == (Reason.PAUSED, rome(MONDAY, 14))
    outside = state(OFFICE, rome(MONDAY, 12, 5), paused_until=until)
    assert outside.reason is Reason.OUTSIDE_HOURS


def test_pause_counts_real_time_across_the_dst_change() -> None:
    assert pause(rome(SPRING_FORWARD, 1, 50)) == rome(SPRING_FORWARD, 3, 10)
    with pytest.raises(PlanningError, match="at least a minute"):
        pause(rome(MONDAY, 10), minutes=0)


def test_a_channel_turned_off() -> None:
    phone_only = frozenset({Channel.PHONE})
    now = rome(MONDAY, 10)
    assert state(OFFICE, now, channels=phone_only, channel=Channel.PHONE).open
    off = state(OFFICE, now, channels=phone_only, channel=Channel.VIDEO)
    assert off == Availability(False, Reason.CHANNEL_OFF, None, None)
    assert (
        state(OFFICE, now, channels=frozenset(), channel=Channel.PHONE).reason is Reason.CHANNEL_OFF
    )


# --- next opening -----------------------------------------------------------------------------


def test_next_opening_from_the_evening_is_the_next_morning() -> None:
    closed = state(OFFICE, rome(MONDAY, 20))
    assert closed == Availability(False, Reason.OUTSIDE_HOURS, None, rome(MONDAY + timedelta(1), 9))


def test_next_opening_skips_a_day_closed_by_override() -> None:
    tuesday_off = {MONDAY + timedelta(1): ()}
    assert state(OFFICE, rome(MONDAY, 20), tuesday_off).next_opening == rome(
        MONDAY + timedelta(2), 9
    )


def test_never_open_or_not_within_the_horizon() -> None:
    assert state(WeeklyPlanning("Europe/Rome", {}), rome(MONDAY)).next_opening is None
    mondays = week(mon=slots("09:00-10:00"))
    next_two_off = {MONDAY + timedelta(days=7): (), MONDAY + timedelta(days=14): ()}
    assert state(mondays, rome(MONDAY, 11), next_two_off).next_opening is None
    later = availability(
        mondays,
        next_two_off,
        rome(MONDAY, 11),
        paused_until=None,
        channels=ALL_CHANNELS,
        horizon_days=21,
    )
    assert later.next_opening == rome(MONDAY + timedelta(days=21), 9)


# --- DST --------------------------------------------------------------------------------------


def test_spring_forward_a_slot_ending_in_the_gap_ends_when_the_clocks_jump() -> None:
    planning = week(sun=slots("01:30-02:30"))
    opened = rome(SPRING_FORWARD, 1, 30)
    closes_at = state(planning, opened).closes_at
    assert closes_at == rome(SPRING_FORWARD, 3)
    assert closes_at is not None and real(closes_at) - real(opened) == timedelta(minutes=30)
    assert not is_open(planning, rome(SPRING_FORWARD, 3))


def test_spring_forward_a_slot_inside_the_gap_does_not_happen() -> None:
    planning = week(sun=slots("02:10-02:50", "10:00-11:00"))
    assert next_slots(planning, {}, rome(SPRING_FORWARD), 1) == [rome(SPRING_FORWARD, 10)]


def test_spring_forward_a_slot_starting_in_the_gap_opens_when_the_clocks_jump() -> None:
    planning = week(sun=slots("02:30-05:00"))
    assert state(planning, rome(SPRING_FORWARD, 1, 59)).next_opening == rome(SPRING_FORWARD, 3)
    assert is_open(planning, rome(SPRING_FORWARD, 3))


def test_fall_back_the_repeated_hour_is_inside_the_slot() -> None:
    planning = week(sun=slots("01:00-04:00"))
    first, second = rome(FALL_BACK, 2, 30), rome(FALL_BACK, 2, 30, fold=1)
    assert real(second) - real(first) == timedelta(hours=1)
    assert is_open(planning, first) and is_open(planning, second)
    [start] = next_slots(planning, {}, rome(FALL_BACK), 1)
    closes_at = state(planning, first).closes_at
    assert start == rome(FALL_BACK, 1) and closes_at == rome(FALL_BACK, 4)
    assert closes_at is not None and real(closes_at) - real(start) == timedelta(hours=4)


def test_fall_back_a_time_that_happens_twice_is_its_first_occurrence() -> None:
    planning = week(sun=slots("02:30-05:00"))
    assert state(planning, rome(FALL_BACK, 2)).next_opening == rome(FALL_BACK, 2, 30, fold=0)
    assert state(planning, rome(FALL_BACK, 2, 30, fold=1)).closes_at == rome(FALL_BACK, 5)


# --- appointments -----------------------------------------------------------------------------


def test_next_slots_at_closing() -> None:
    after = rome(MONDAY, 18)
    tuesday, wednesday = MONDAY + timedelta(1), MONDAY + timedelta(2)
    assert next_slots(OFFICE, {}, after, 3) == [
        rome(tuesday, 9),
        rome(tuesday, 14),
        rome(wednesday, 9),
    ]
    assert next_slots(OFFICE, {tuesday: ()}, after, 1) == [rome(wednesday, 9)]
    assert next_slots(NIGHTS, {}, rome(MONDAY, 3), 9) == [
        rome(MONDAY, 9),  # 09:00-12:00 and 12:00-14:00 are one opening
        rome(MONDAY + timedelta(6), 22),
        rome(MONDAY + timedelta(7), 9),
        rome(MONDAY + timedelta(13), 22),
    ]


def test_next_slots_edges() -> None:
    assert next_slots(OFFICE, {}, rome(MONDAY, 9), 1) == [rome(MONDAY, 9)]
    assert next_slots(OFFICE, {}, rome(MONDAY, 9) + TICK, 1) == [rome(MONDAY, 14)]
    assert next_slots(OFFICE, {}, rome(MONDAY, 9), 0) == []
    with pytest.raises(PlanningError, match="count"):
        next_slots(OFFICE, {}, rome(MONDAY, 9), -1)


# --- editing today's planning -----------------------------------------------------------------


def apply(overrides: Overrides, changes: Overrides) -> dict[date, tuple[Slot, ...]]:
    return {**overrides, **changes}


def test_set_today_end_cuts_extends_or_drops() -> None:
    now = rome(MONDAY, 10)
    assert set_today_end(OFFICE, {}, now, time(16)) == {MONDAY: slots("09:00-12:00", "14:00-16:00")}
    assert set_today_end(OFFICE, {}, now, time(20)) == {MONDAY: slots("09:00-12:00", "14:00-20:00")}
    assert set_today_end(OFFICE, {}, now, time(11)) == {MONDAY: slots("09:00-11:00")}
    assert set_today_end(OFFICE, {}, now, time(0)) == {MONDAY: slots("09:00-12:00", "14:00-00:00")}
    earlier = set_today_end(OFFICE, {}, rome(MONDAY, 8), time(13))
    assert earlier == {MONDAY: slots("09:00-13:00")}


def test_set_today_end_with_nothing_left_today_opens_now() -> None:
    changes = set_today_end(OFFICE, {}, rome(MONDAY, 19, 5, 42), time(21))
    assert changes == {MONDAY: slots("09:00-12:00", "14:00-18:00", "19:05-21:00")}
    assert is_open(OFFICE, rome(MONDAY, 19, 5, 42), changes)


def test_set_today_end_must_be_after_now() -> None:
    with pytest.raises(PlanningError, match=r"^end 09:30 is not after now \(10:00\)$"):
        set_today_end(OFFICE, {}, rome(MONDAY, 10), time(9, 30))
    with pytest.raises(PlanningError, match="not after now"):
        set_today_end(OFFICE, {}, rome(MONDAY, 10, 0, 30), time(10))


def test_set_today_end_cuts_the_slot_from_yesterday() -> None:
    sunday = MONDAY - timedelta(1)
    changes = set_today_end(NIGHTS, {}, rome(MONDAY, 1), time(1, 30))
    assert changes == {sunday: slots("22:00-01:30"), MONDAY: ()}
    assert is_open(NIGHTS, rome(MONDAY, 1, 29), changes)
    assert not is_open(NIGHTS, rome(MONDAY, 1, 30), changes)
    # Ending later keeps yesterday's slot and moves today's last one.
    changes = set_today_end(NIGHTS, {}, rome(MONDAY, 1), time(23))
    assert changes == {MONDAY: slots("09:00-12:00", "12:00-23:00")}


def test_stop_now_keeps_the_past_and_closes_the_rest_of_today() -> None:
    now = rome(MONDAY, 10, 17, 30)
    changes = stop_now(OFFICE, {}, now)
    assert changes == {MONDAY: slots("09:00-10:17")}
    after = state(OFFICE, now, changes)
    assert after.reason is Reason.OUTSIDE_HOURS
    assert after.next_opening == rome(MONDAY + timedelta(1), 9)
    assert is_open(OFFICE, rome(MONDAY, 10, 16), changes)


def test_stop_now_cuts_the_slot_from_yesterday() -> None:
    sunday = MONDAY - timedelta(1)
    changes = stop_now(NIGHTS, {}, rome(MONDAY, 1))
    assert changes == {sunday: slots("22:00-01:00"), MONDAY: ()}
    assert not is_open(NIGHTS, rome(MONDAY, 1), changes)


def test_available_now_until_then_as_planned() -> None:
    now = rome(MONDAY, 13)
    assert available_now(OFFICE, {}, now, time(15)) == {MONDAY: slots("09:00-12:00", "13:00-15:00")}
    changes = available_now(OFFICE, {}, now, time(14))
    assert changes == {MONDAY: slots("09:00-12:00", "13:00-14:00", "14:00-18:00")}
    assert state(OFFICE, now, changes).closes_at == rome(MONDAY, 18)
    # Already open: the running slot now ends at `until`.
    assert available_now(OFFICE, {}, rome(MONDAY, 10), time(11)) == {
        MONDAY: slots("09:00-11:00", "14:00-18:00")
    }


def test_available_now_past_midnight() -> None:
    changes = available_now(OFFICE, {}, rome(MONDAY, 23), time(2))
    assert changes == {MONDAY: slots("09:00-12:00", "14:00-18:00", "23:00-02:00")}
    assert is_open(OFFICE, rome(MONDAY + timedelta(1), 1), changes)
    with pytest.raises(PlanningError, match="is now"):
        available_now(OFFICE, {}, rome(MONDAY, 23, 0, 40), time(23))


def test_edits_keep_other_overrides_of_today_in_the_past() -> None:
    overrides = {MONDAY: slots("07:00-08:00", "10:00-11:00")}
    changes = stop_now(OFFICE, overrides, rome(MONDAY, 9))
    assert changes == {MONDAY: slots("07:00-08:00")}
    assert apply(overrides, changes)[MONDAY] == slots("07:00-08:00")


# --- properties -------------------------------------------------------------------------------

ZONES = ("Europe/Rome", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC")
QUARTERS_A_DAY = 96


def quarter(n: int) -> time:
    return time(n // 4 % 24, n % 4 * 15)


@st.composite
def weekly_slots(draw: st.DrawFn) -> dict[int, tuple[Slot, ...]]:
    """Non-overlapping slots on a week's timeline in quarters of an hour; some touch, some
    cross midnight (not from Sunday into Monday)."""
    parts = draw(st.lists(st.tuples(st.integers(0, 150), st.integers(1, 95)), max_size=12))
    days: dict[int, tuple[Slot, ...]] = {}
    position = 0
    for gap, length in parts:
        start = position + gap
        position = start + length
        if position > 7 * QUARTERS_A_DAY:
            break
        slot = Slot(quarter(start), quarter(position))
        days[start // QUARTERS_A_DAY] = (*days.get(start // QUARTERS_A_DAY, ()), slot)
    return days


@st.composite
def day_slots(draw: st.DrawFn) -> tuple[Slot, ...]:
    parts = draw(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 95)), max_size=4))
    out: list[Slot] = []
    position = 0
    for gap, length in parts:
        start = position + gap
        if start >= QUARTERS_A_DAY:
            break
        position = min(start + length, start + QUARTERS_A_DAY - 1)
        out.append(Slot(quarter(start), quarter(position)))
        if position >= QUARTERS_A_DAY:
            break
    return tuple(out)


YEAR = datetime(2026, 1, 1, tzinfo=UTC)
DST_DAYS = [datetime(2026, 3, 8, tzinfo=UTC), datetime(2026, 3, 29, tzinfo=UTC)]
DST_DAYS += [datetime(2026, 10, 25, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)]
DST_DAYS += [datetime(2026, 4, 5, tzinfo=UTC), datetime(2026, 10, 4, tzinfo=UTC)]  # Lord Howe
instants = st.one_of(
    st.builds(lambda q: YEAR + q * timedelta(minutes=15), st.integers(0, 365 * QUARTERS_A_DAY)),
    st.builds(
        lambda day, q: day + q * timedelta(minutes=15),
        st.sampled_from(DST_DAYS),
        st.integers(-QUARTERS_A_DAY, 2 * QUARTERS_A_DAY),
    ),
    st.datetimes(datetime(2026, 1, 1), datetime(2026, 12, 31)).map(lambda d: d.replace(tzinfo=UTC)),
)


@st.composite
def situations(
    draw: st.DrawFn, zones: tuple[str, ...] = ZONES
) -> tuple[WeeklyPlanning, dict[date, tuple[Slot, ...]], datetime]:
    planning = WeeklyPlanning(draw(st.sampled_from(zones)), draw(weekly_slots()))
    now = draw(instants)
    today = now.astimezone(planning.zone).date()
    overrides = draw(
        st.dictionaries(st.integers(-1, 4).map(lambda n: today + timedelta(n)), day_slots())
    )
    return planning, check_overrides(overrides), now


@settings(max_examples=100, deadline=None)
@given(zone=st.sampled_from(ZONES), days=weekly_slots())
def test_any_non_overlapping_planning_is_accepted(
    zone: str, days: dict[int, tuple[Slot, ...]]
) -> None:
    planning = WeeklyPlanning(zone, days)
    assert dict(planning.days) == days
    for weekday, slots_of_day in days.items():
        with pytest.raises(PlanningError, match="overlap"):
            WeeklyPlanning(zone, {**days, weekday: slots_of_day + slots_of_day[:1]})


@settings(max_examples=100, deadline=None)
@given(situation=situations(), pause_minutes=st.one_of(st.none(), st.integers(-60, 600)))
def test_open_agrees_with_next_opening_and_closes_at(
    situation: tuple[WeeklyPlanning, dict[date, tuple[Slot, ...]], datetime],
    pause_minutes: int | None,
) -> None:
    planning, overrides, now = situation
    # A negative pause is one that is already over.
    paused_until = None if pause_minutes is None else now + timedelta(minutes=pause_minutes)

    def open_at(moment: datetime) -> bool:
        return state(planning, moment, overrides, paused_until=paused_until).open

    # Compare and step in UTC: arithmetic on a datetime in a DST zone is wall-clock
    # arithmetic, and Python never finds an ambiguous local time equal to another zone's.
    now_state = state(planning, now, overrides, paused_until=paused_until)
    if now_state.open:
        assert now_state.next_opening is not None
        assert now_state.next_opening.astimezone(UTC) == now.astimezone(UTC)
        if now_state.closes_at is not None:
            closes = now_state.closes_at.astimezone(UTC)
            assert open_at(closes - TICK)
            assert not open_at(closes)
    elif now_state.next_opening is not None:
        opening = now_state.next_opening.astimezone(UTC)
        assert opening > now
        assert open_at(opening)
        assert not open_at(opening - TICK)


@settings(max_examples=100, deadline=None)
@given(situation=situations(zones=("UTC", "Asia/Kolkata")))
def test_without_dst_open_means_the_wall_clock_is_inside_a_slot(
    situation: tuple[WeeklyPlanning, dict[date, tuple[Slot, ...]], datetime],
) -> None:
    planning, overrides, now = situation
    wall = now.astimezone(planning.zone)
    minute = wall.hour * 60 + wall.minute + (wall.second + wall.microsecond / 1e6) / 60
    today = wall.date()
    inside = any(
        s <= minute < e for s, e in map(Slot.minutes, slots_on(planning, overrides, today))
    )
    yesterday = slots_on(planning, overrides, today - timedelta(1))
    inside |= any(minute + 24 * 60 < e for _, e in map(Slot.minutes, yesterday))
    assert is_open(planning, now, overrides) == inside


def no_dst_change_near(planning: WeeklyPlanning, now: datetime) -> bool:
    offsets = {
        (now + timedelta(hours=h)).astimezone(planning.zone).utcoffset() for h in range(-50, 50)
    }
    return len(offsets) == 1


@settings(max_examples=100, deadline=None)
@given(
    situation=situations(),
    edit=st.sampled_from(["stop", "available", "end"]),
    target=st.integers(0, QUARTERS_A_DAY - 1).map(quarter),
    back=st.integers(1, 48 * 60),
)
def test_edits_change_only_the_future(
    situation: tuple[WeeklyPlanning, dict[date, tuple[Slot, ...]], datetime],
    edit: str,
    target: time,
    back: int,
) -> None:
    planning, overrides, now = situation
    assume(no_dst_change_near(planning, now))  # edits work in wall time: see the module notes
    wall = now.astimezone(planning.zone)
    minute_start = now - timedelta(seconds=wall.second, microseconds=wall.microsecond)
    try:
        if edit == "stop":
            changes = stop_now(planning, overrides, now)
        elif edit == "available":
            changes = available_now(planning, overrides, now, target)
        else:
            changes = set_today_end(planning, overrides, now, target)
    except PlanningError as err:
        assert "is now" in str(err) or "not after now" in str(err)
        return
    assert wall.date() in changes
    edited = apply(overrides, changes)
    for day, day_slots_ in changes.items():
        assert check_slots(day_slots_, str(day)) == day_slots_
    if edit == "stop":
        assert not is_open(planning, now, edited)
    local_stop = datetime.combine(wall.date(), target)
    if edit == "available":
        assert is_open(planning, now, edited)
        if local_stop <= wall.replace(tzinfo=None):
            local_stop += timedelta(days=1)
        assert is_open(planning, real(local_stop.replace(tzinfo=planning.zone)) - TICK, edited)
    if edit == "end" and target != time(0):
        assert not is_open(planning, local_stop.replace(tzinfo=planning.zone), edited)
    earlier = minute_start - timedelta(minutes=back)
    if earlier.astimezone(planning.zone).date() >= wall.date() - timedelta(1):
        assert is_open(planning, earlier, edited) == is_open(planning, earlier, overrides)
