"""The line self-test on the Availability page: the last test's result and time, the last
passed one, whether going available needs one now (IVR_LINE_TEST_REQUIRED_HOURS), and the
button that starts the same test as the phone menu's key 0 (a POST with the panel's CSRF
token, like every form). The card follows the test live (the line_tests trigger notifies).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from ivr_engine.errors import LineTestRefused
from ivr_engine.store import line_tests as store
from ivr_engine.store import planning
from ivr_engine.web.deps import DEPS
from ivr_engine.web.panel import i18n
from ivr_engine.web.panel.render import page, redirect
from ivr_engine.web.panel.session import expert_id

HOME = "/panel/availability"
REFUSALS = ("in_call", "running", "stopping", "unavailable", "line_test_required")


async def line_test_context(request: web.Request) -> dict[str, Any]:
    """What the card shows, for the Availability page and its live fragment."""
    deps = request.app[DEPS]
    me = expert_id(request)
    last = await store.latest(deps.pool, me)
    passed = await store.last_passed(deps.pool, me)
    hours = deps.settings.line_test_required_hours
    av = await planning.load(deps.pool, me)
    return {
        "lt_last": last,
        "lt_passed": passed,
        "lt_hours": hours,
        "lt_needed": hours > 0
        and (passed is None or passed < datetime.now(UTC) - timedelta(hours=hours)),
        "lt_enabled": deps.line_test is not None,
        "lt_tz": av.planning.timezone,
    }


async def fragment(request: web.Request) -> web.Response:
    return page(request, "_line_test.html", **await line_test_context(request))


async def start(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    if deps.line_test is None:
        return redirect(f"{HOME}?refused=unavailable#line-test")
    try:
        await deps.line_test(expert_id(request), source="panel")
    except LineTestRefused as err:
        return redirect(f"{HOME}?refused={err.reason}#line-test")
    return redirect(f"{HOME}?saved=line_test#line-test")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/panel/line-test", start)
    app.router.add_get("/panel/live/line-test", fragment)


i18n.register(
    en={
        "lt.title": "Line test",
        "lt.hint": "Before your shift: we call your registered number, play a test message"
        " and you press any key. You can also start it from the phone menu (key 0).",
        "lt.button": "Test my line",
        "lt.none": "No line test yet.",
        "lt.last": "Last test: {result}, {when}.",
        "lt.running": "A test is in progress: answer your phone and press a key.",
        "lt.passed_at": "Last passed: {when}.",
        "lt.needed": "Going available needs a line test passed in the last {hours} hours.",
        "lt.result.passed": "passed",
        "lt.result.no_answer": "no answer",
        "lt.result.busy": "busy",
        "lt.result.no_key": "no key pressed",
        "lt.result.failed": "the call could not be placed",
        "lt.result.interrupted": "interrupted by the service",
        "avail.saved.line_test": "We are calling your registered number now: answer and press"
        " a key.",
        "avail.refused.in_call": "A line test cannot start now: you are being called or are"
        " in a consultation.",
        "avail.refused.running": "A line test of your number is already in progress.",
        "avail.refused.stopping": "The service is restarting: try the line test again in a minute.",
        "avail.refused.unavailable": "Line tests cannot be started here now.",
        "avail.refused.line_test_required": "You cannot go available yet: pass a line test"
        " first (Test my line, below).",
    },
    it={
        "lt.title": "Prova della linea",
        "lt.hint": "Prima del turno: chiamiamo il tuo numero registrato, ascolti un messaggio di"
        " prova e premi un tasto qualsiasi. Puoi avviarla anche dal menu telefonico (tasto 0).",
        "lt.button": "Prova la mia linea",
        "lt.none": "Nessuna prova della linea finora.",
        "lt.last": "Ultima prova: {result}, {when}.",
        "lt.running": "Prova in corso: rispondi al telefono e premi un tasto.",
        "lt.passed_at": "Ultima prova superata: {when}.",
        "lt.needed": "Per renderti disponibile serve una prova della linea superata nelle"
        " ultime {hours} ore.",
        "lt.result.passed": "superata",
        "lt.result.no_answer": "nessuna risposta",
        "lt.result.busy": "occupato",
        "lt.result.no_key": "nessun tasto premuto",
        "lt.result.failed": "la chiamata non è partita",
        "lt.result.interrupted": "interrotta dal servizio",
        "avail.saved.line_test": "Stiamo chiamando il tuo numero registrato: rispondi e premi"
        " un tasto.",
        "avail.refused.in_call": "Non è possibile avviare una prova adesso: stai ricevendo una"
        " chiamata o sei in una consulenza.",
        "avail.refused.running": "Una prova della linea del tuo numero è già in corso.",
        "avail.refused.stopping": "Il servizio si sta riavviando: riprova fra un minuto.",
        "avail.refused.unavailable": "Qui non è possibile avviare prove della linea adesso.",
        "avail.refused.line_test_required": "Non puoi ancora renderti disponibile: prima"
        " supera una prova della linea (Prova la mia linea, qui sotto).",
    },
)
