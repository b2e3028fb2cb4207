"""The Availability page: whether the waiting list is open now, today's slots (changed for
today only, or back to the weekly ones), a pause, the channels, and the weekly planning.

Slots are typed as in the phone menu and the API ("09:00-12:00, 15:00-19:00") and checked
by the same rules (domain/planning.py); the changes go through store/planning.py like the
JSON API's. The status card re-reads itself when the expert changes elsewhere (phone menu).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web

from ivr_engine.domain.planning import (
    WEEKDAYS,
    Channel,
    Slot,
    WeeklyPlanning,
    load_zone,
    pause,
    slots_on,
)
from ivr_engine.errors import LineTestRequired, PlanningError
from ivr_engine.store import planning as store
from ivr_engine.store.planning import ExpertAvailability
from ivr_engine.web.deps import DEPS
from ivr_engine.web.panel import i18n
from ivr_engine.web.panel.line_test import REFUSALS, line_test_context
from ivr_engine.web.panel.render import page, redirect, text
from ivr_engine.web.panel.session import expert_id
from ivr_engine.web.panel.slot_form import read_slots, runs_over, show_slots

HOME = "/panel/availability"
_SAVED = ("planning", "today", "weekly_today", "pause", "resume", "channels", "line_test")
# Going available without the line test IVR_LINE_TEST_REQUIRED_HOURS asks for: said on top.
_NEEDS_TEST = f"{HOME}?refused=line_test_required#line-test"


def _when(request: web.Request, moment: datetime, today: date) -> str:
    if moment.date() == today:
        return text(request, "avail.when.today", time=f"{moment:%H:%M}")
    if moment.date() == today + timedelta(days=1):
        return text(request, "avail.when.tomorrow", time=f"{moment:%H:%M}")
    day = text(request, f"avail.day.{WEEKDAYS[moment.weekday()]}")
    return text(request, "avail.when.day", day=day, date=f"{moment:%d/%m}", time=f"{moment:%H:%M}")


def _status(request: web.Request, av: ExpertAvailability, now: datetime) -> dict[str, Any]:
    state = av.at(now)
    zone = av.planning.zone
    today = now.astimezone(zone).date()
    paused = av.paused_until is not None and av.paused_until > now
    return {
        "state": state,
        "tz": av.planning.timezone,
        "today": today,
        "today_name": text(request, f"avail.day.{WEEKDAYS[today.weekday()]}"),
        "today_slots": slots_on(av.planning, av.overrides, today),
        "today_changed": today in av.overrides,
        "paused_until": av.paused_until if paused else None,
        "closes_at": _when(request, state.closes_at, today) if state.closes_at else "",
        "next_opening": _when(request, state.next_opening, today)
        if state.next_opening and not state.open
        else "",
        "pause_minutes": request.app[DEPS].settings.pause_minutes,
    }


async def _render(
    request: web.Request,
    *,
    status: int = 200,
    weekly: dict[str, str] | None = None,
    today_value: str | None = None,
    errors: dict[str, str] | None = None,
) -> web.Response:
    av = await store.load(request.app[DEPS].pool, expert_id(request))
    now = datetime.now(UTC)
    current = _status(request, av, now)
    typed = {
        **{
            name: show_slots(av.planning.days.get(day, ())) if av.has_planning else ""
            for day, name in enumerate(WEEKDAYS)
        },
        "timezone": av.planning.timezone,
    }
    saved = request.query.get("saved", "")
    refused = request.query.get("refused", "")
    return page(
        request,
        "availability.html",
        status=status,
        av=av,
        channels=sorted(c.value for c in av.channels),
        all_channels=[c.value for c in Channel],
        weekdays=WEEKDAYS,
        weekly=weekly or typed,
        today_value=show_slots(current["today_slots"]) if today_value is None else today_value,
        errors=errors or {},
        saved=saved if saved in _SAVED else "",
        refused=refused if refused in REFUSALS else "",
        **current,
        **await line_test_context(request),
    )


async def availability_page(request: web.Request) -> web.Response:
    return await _render(request)


async def status_fragment(request: web.Request) -> web.Response:
    av = await store.load(request.app[DEPS].pool, expert_id(request))
    return page(request, "_availability_status.html", **_status(request, av, datetime.now(UTC)))


async def save_planning(request: web.Request) -> web.Response:
    form = await request.post()
    typed = {name: str(form.get(name, "")).strip() for name in (*WEEKDAYS, "timezone")}
    errors: dict[str, str] = {}
    days: dict[int, tuple[Slot, ...]] = {}
    for day, name in enumerate(WEEKDAYS):
        slots, error = read_slots(request, typed[name])
        if error:
            errors[name] = error
        elif slots:
            days[day] = slots
    try:
        load_zone(typed["timezone"])
    except PlanningError:
        errors["timezone"] = text(request, "avail.error.timezone", zone=typed["timezone"])
    late = None if errors else runs_over(days)
    if late is not None:
        following = text(request, f"avail.day.{WEEKDAYS[(late + 1) % 7]}")
        errors[WEEKDAYS[late]] = text(request, "avail.error.next_day", day=following)
    if errors:
        return await _render(request, status=422, weekly=typed, errors=errors)
    deps = request.app[DEPS]
    await store.replace_weekly(
        deps.pool, expert_id(request), WeeklyPlanning(typed["timezone"], days)
    )
    return redirect(f"{HOME}?saved=planning")


async def _today(request: web.Request) -> date:
    av = await store.load(request.app[DEPS].pool, expert_id(request))
    return datetime.now(av.planning.zone).date()


async def save_today(request: web.Request) -> web.Response:
    typed = str((await request.post()).get("today", "")).strip()
    slots, error = read_slots(request, typed)
    if error:
        return await _render(request, status=422, today_value=typed, errors={"today": error})
    deps = request.app[DEPS]
    try:
        await store.set_override(
            deps.pool,
            expert_id(request),
            await _today(request),
            slots,
            line_test_hours=_hours(request),
        )
    except LineTestRequired:
        return redirect(_NEEDS_TEST)
    return redirect(f"{HOME}?saved=today")


async def weekly_today(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    try:
        await store.set_override(
            deps.pool,
            expert_id(request),
            await _today(request),
            None,
            line_test_hours=_hours(request),
        )
    except LineTestRequired:
        return redirect(_NEEDS_TEST)
    return redirect(f"{HOME}?saved=weekly_today")


async def start_pause(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    until = pause(datetime.now(UTC), deps.settings.pause_minutes)
    await store.set_pause(deps.pool, expert_id(request), until)
    return redirect(f"{HOME}?saved=pause")


async def end_pause(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    try:
        await store.set_pause(deps.pool, expert_id(request), None, line_test_hours=_hours(request))
    except LineTestRequired:
        return redirect(_NEEDS_TEST)
    return redirect(f"{HOME}?saved=resume")


async def save_channels(request: web.Request) -> web.Response:
    form = await request.post()
    deps = request.app[DEPS]
    # An unticked checkbox is not sent at all: every channel absent from the form is off.
    switches = {c.value: c.value in form for c in Channel}
    try:
        await store.set_channels(
            deps.pool, expert_id(request), switches, line_test_hours=_hours(request)
        )
    except LineTestRequired:
        return redirect(_NEEDS_TEST)
    return redirect(f"{HOME}?saved=channels")


def _hours(request: web.Request) -> float:
    return request.app[DEPS].settings.line_test_required_hours


def add_routes(app: web.Application) -> None:
    app.router.add_get(HOME, availability_page)
    app.router.add_get("/panel/live/availability", status_fragment)
    app.router.add_post(f"{HOME}/planning", save_planning)
    app.router.add_post(f"{HOME}/today", save_today)
    app.router.add_post(f"{HOME}/today/weekly", weekly_today)
    app.router.add_post(f"{HOME}/pause", start_pause)
    app.router.add_post(f"{HOME}/resume", end_pause)
    app.router.add_post(f"{HOME}/channels", save_channels)


_DAYS_EN = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_DAYS_IT = ("lunedì", "martedì", "mercoledì", "giovedì", "venerdì", "sabato", "domenica")

i18n.register(
    en={
        **{f"avail.day.{d}": name for d, name in zip(WEEKDAYS, _DAYS_EN, strict=True)},
        "avail.title": "Availability",
        "avail.when.today": "today at {time}",
        "avail.when.tomorrow": "tomorrow at {time}",
        "avail.when.day": "{day} {date} at {time}",
        "avail.error.slot": "“{slot}” is not a slot: write slots like 09:00-12:00, from 00:00"
        " to 23:59, separated by commas.",
        "avail.error.overlap": "Two of these slots overlap.",
        "avail.error.next_day": "The last slot runs past midnight into {day}'s first slot.",
        "avail.error.timezone": "“{zone}” is not a timezone: write one like Europe/Rome.",
        "avail.now": "Now",
        "avail.open": "Your waiting list is open.",
        "avail.open_until": "Open until {when}.",
        "avail.closed": "Your waiting list is closed: {reason}.",
        "avail.next_opening": "Next opening: {when}.",
        "avail.paused_until": "Paused until {time}.",
        "avail.pause": "Pause {minutes} minutes",
        "avail.pause_hint": "During a pause clients can still join your waiting list; nobody"
        " is put through to you until it ends.",
        "avail.resume": "Return available",
        "avail.today.title": "Today, {day}",
        "avail.today.closed": "Closed all day.",
        "avail.today.all_day": "Open all day.",
        "avail.today.changed": "changed for today only",
        "avail.today.label": "Slots for today only",
        "avail.today.hint": "For example 09:00-12:00, 15:00-19:00. Empty: closed today.",
        "avail.today.submit": "Save for today",
        "avail.today.weekly": "Back to the weekly slots for today",
        "avail.channels.title": "How clients can reach you",
        "avail.channel.phone": "Phone",
        "avail.channel.chat": "Chat",
        "avail.channel.video": "Video",
        "avail.channels.submit": "Save channels",
        "avail.weekly.title": "Weekly planning",
        "avail.weekly.hint": "Each day's slots, like 09:00-12:00, 15:00-19:00; leave a day empty"
        " when you are closed. A slot like 22:00-02:00 runs past midnight.",
        "avail.weekly.none": "You have no weekly planning yet, so you count as available at"
        " all hours. Leaving every day empty keeps it so.",
        "avail.timezone": "Timezone",
        "avail.timezone_hint": "For example Europe/Rome.",
        "avail.weekly.submit": "Save weekly planning",
        "avail.saved.planning": "Weekly planning saved.",
        "avail.saved.today": "Today's slots saved.",
        "avail.saved.weekly_today": "Today follows your weekly slots again.",
        "avail.saved.pause": "You are on a pause.",
        "avail.saved.resume": "You are available again.",
        "avail.saved.channels": "Channels saved.",
    },
    it={
        **{f"avail.day.{d}": name for d, name in zip(WEEKDAYS, _DAYS_IT, strict=True)},
        "avail.title": "Disponibilità",
        "avail.when.today": "oggi alle {time}",
        "avail.when.tomorrow": "domani alle {time}",
        "avail.when.day": "{day} {date} alle {time}",
        "avail.error.slot": "«{slot}» non è una fascia oraria: scrivile come 09:00-12:00, da"
        " 00:00 a 23:59, separate da virgole.",
        "avail.error.overlap": "Due di queste fasce si sovrappongono.",
        "avail.error.next_day": "L'ultima fascia va oltre la mezzanotte e si sovrappone alla"
        " prima di {day}.",
        "avail.error.timezone": "«{zone}» non è un fuso orario: scrivine uno come Europe/Rome.",
        "avail.now": "Adesso",
        "avail.open": "La tua lista d'attesa è aperta.",
        "avail.open_until": "Aperta fino a {when}.",
        "avail.closed": "La tua lista d'attesa è chiusa: {reason}.",
        "avail.next_opening": "Prossima apertura: {when}.",
        "avail.paused_until": "In pausa fino alle {time}.",
        "avail.pause": "Pausa di {minutes} minuti",
        "avail.pause_hint": "Durante la pausa i clienti possono ancora mettersi in lista"
        " d'attesa; nessuno ti viene passato finché non finisce.",
        "avail.resume": "Torna disponibile",
        "avail.today.title": "Oggi, {day}",
        "avail.today.closed": "Chiuso tutto il giorno.",
        "avail.today.all_day": "Aperto tutto il giorno.",
        "avail.today.changed": "modificato solo per oggi",
        "avail.today.label": "Fasce orarie solo per oggi",
        "avail.today.hint": "Per esempio 09:00-12:00, 15:00-19:00. Vuoto: chiuso oggi.",
        "avail.today.submit": "Salva per oggi",
        "avail.today.weekly": "Torna alle fasce settimanali per oggi",
        "avail.channels.title": "Come possono raggiungerti i clienti",
        "avail.channel.phone": "Telefono",
        "avail.channel.chat": "Chat",
        "avail.channel.video": "Video",
        "avail.channels.submit": "Salva i canali",
        "avail.weekly.title": "Orario settimanale",
        "avail.weekly.hint": "Le fasce di ogni giorno, come 09:00-12:00, 15:00-19:00; lascia"
        " vuoto un giorno in cui sei chiuso. Una fascia come 22:00-02:00 va oltre la mezzanotte.",
        "avail.weekly.none": "Non hai ancora un orario settimanale, quindi risulti disponibile a"
        " ogni ora. Se lasci vuoti tutti i giorni resta così.",
        "avail.timezone": "Fuso orario",
        "avail.timezone_hint": "Per esempio Europe/Rome.",
        "avail.weekly.submit": "Salva l'orario settimanale",
        "avail.saved.planning": "Orario settimanale salvato.",
        "avail.saved.today": "Fasce di oggi salvate.",
        "avail.saved.weekly_today": "Oggi segui di nuovo le tue fasce settimanali.",
        "avail.saved.pause": "Sei in pausa.",
        "avail.saved.resume": "Sei di nuovo disponibile.",
        "avail.saved.channels": "Canali salvati.",
    },
)
