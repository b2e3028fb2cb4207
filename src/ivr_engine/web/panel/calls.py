"""The Calls page, the expert's default page: who they are talking to and for how long,
the waiting list, "call now" on a waiting client, and refuse all (after a confirmation).

The list lives in a fragment (/panel/live/calls) that the page re-reads whenever the
event stream (/panel/events) reports a change for this expert.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ivr_engine.domain.planning import Channel
from ivr_engine.errors import Conflict, LineTestRequired, NotFound
from ivr_engine.store import live as live_store
from ivr_engine.store import offers
from ivr_engine.store import planning as planning_store
from ivr_engine.web import live
from ivr_engine.web.deps import DEPS
from ivr_engine.web.panel import i18n
from ivr_engine.web.panel.fields import parse_id
from ivr_engine.web.panel.render import page, problem, redirect
from ivr_engine.web.panel.session import expert_id


async def _context(request: web.Request) -> dict[str, Any]:
    pool = request.app[DEPS].pool
    me = expert_id(request)
    calls = await live_store.expert_calls(pool, me)
    av = await planning_store.load(pool, me)
    offered = await offers.of_expert(pool, me)
    return {"calls": calls, "availability": av.at(datetime.now(UTC)), "av": av, "offered": offered}


async def calls_page(request: web.Request) -> web.Response:
    notice = request.query.get("done", "")
    count = request.query.get("count", "0")
    return page(
        request,
        "calls.html",
        notice=notice,
        refused_count=int(count) if count.isdigit() else 0,
        **await _context(request),
    )


async def calls_fragment(request: web.Request) -> web.Response:
    return page(request, "_calls_live.html", **await _context(request))


async def events(request: web.Request) -> web.StreamResponse:
    return await live.stream(request, request.app[DEPS].hub, expert_id(request))


async def solicit(request: web.Request) -> web.Response:
    """Call now: the engine rings the expert for this waiting client at once (ending a
    pause: the expert asked for the call)."""
    deps = request.app[DEPS]
    request_id = parse_id(request.match_info["request_id"])
    owner = None if request_id is None else await live_store.request_owner(deps.pool, request_id)
    if request_id is None or owner != expert_id(request):
        return problem(request, 404, "error.not_found")
    av = await planning_store.load(deps.pool, owner)
    if Channel.PHONE not in av.channels:
        return redirect("/panel?done=phone_off")  # nothing could ring: say so, change nothing
    try:
        await deps.actions.solicit(request_id)
    except LineTestRequired:
        return redirect("/panel/availability?refused=line_test_required#line-test")
    except (Conflict, NotFound):
        return redirect("/panel?done=too_late")
    return redirect("/panel?done=calling")


async def hand_back(request: web.Request) -> web.Response:
    """The expert took a category request but cannot help: back to distribution, with why."""
    request_id = parse_id(request.match_info["request_id"])
    reason = " ".join(str((await request.post()).get("reason", "")).split())[:200]
    if request_id is None:
        return problem(request, 404, "error.not_found")
    if not reason:
        return redirect("/panel?done=hand_back_reason")
    try:
        await request.app[DEPS].actions.hand_back(request_id, expert_id(request), reason)
    except NotFound:
        return problem(request, 404, "error.not_found")
    except Conflict:
        return redirect("/panel?done=too_late")
    return redirect("/panel?done=handed_back")


async def refuse_all_confirm(request: web.Request) -> web.Response:
    calls = await live_store.expert_calls(request.app[DEPS].pool, expert_id(request))
    return page(request, "refuse_all.html", count=len(calls.waiting))


async def refuse_all(request: web.Request) -> web.Response:
    count, _proposal = await request.app[DEPS].actions.refuse_all(expert_id(request))
    return redirect(f"/panel?done=refused&count={count}")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/panel", calls_page)
    app.router.add_get("/panel/live/calls", calls_fragment)
    app.router.add_get("/panel/events", events)
    app.router.add_post("/panel/requests/{request_id}/solicit", solicit)
    app.router.add_post("/panel/requests/{request_id}/hand-back", hand_back)
    app.router.add_get("/panel/refuse-all", refuse_all_confirm)
    app.router.add_post("/panel/refuse-all", refuse_all)


i18n.register(
    en={
        "calls.title": "Calls",
        "calls.now": "Now",
        "calls.talking_to": "You are talking to",
        "calls.ringing_expert": "Your phone is ringing for",
        "calls.ringing_client": "Calling your client",
        "calls.idle": "You are not on a call.",
        "calls.for": "for",
        "calls.waiting": "Waiting list",
        "calls.offered": "Category requests offered to you",
        "calls.offered_help": "Offered to several experts at once: the first to press 1 takes"
        " the client.",
        "calls.col.category": "Category",
        "calls.col.offered_at": "Offered at",
        "calls.col.outcome": "Outcome",
        "calls.offer.ringing": "ringing now",
        "calls.offer.won": "you took it",
        "calls.offer.taken": "taken by another expert",
        "calls.offer.refused": "you refused it",
        "calls.offer.no_answer": "not answered",
        "calls.offer.released": "withdrawn",
        "calls.offer.handed_back": "handed back",
        "calls.hand_back": "Hand back",
        "calls.hand_back_reason": "Why you cannot help",
        "calls.done.handed_back": "The request went back to the other experts.",
        "calls.done.hand_back_reason": "Say why you hand the request back.",
        "calls.empty": "Nobody is waiting.",
        "calls.position": "Position",
        "calls.client": "Client",
        "calls.waited": "Waiting for",
        "calls.attempts": "Calls to you",
        "calls.call_now": "Call now",
        "calls.call_now_label": "Call now for {alias}",
        "calls.refuse_all": "Refuse all waiting clients…",
        "calls.status.open": "Your waiting list is open.",
        "calls.status.paused": "You are on a pause until {until}.",
        "calls.status.closed": "Your waiting list is closed ({reason}).",
        "calls.done.calling": "Your phone will ring in a moment.",
        "calls.done.too_late": "This client is no longer waiting.",
        "calls.done.phone_off": "Your phone line is switched off: switch it on in Availability"
        " first.",
        "calls.done.refused": "Waiting clients refused: {count}. Each one was told by email.",
        "calls.live": "This list updates by itself.",
        "calls.how": "How",
        "calls.holding": "On the line",
        "calls.callback": "To call back",
        "calls.callback_by": "missed call: by {at}",
        "refuse.title": "Refuse all waiting clients?",
        "refuse.text": "{count} clients are waiting. Each one will be told by email, with an"
        " appointment at your next opening. This cannot be undone.",
        "refuse.confirm": "Yes, refuse them all",
        "refuse.cancel": "No, go back",
    },
    it={
        "calls.title": "Chiamate",
        "calls.now": "Adesso",
        "calls.talking_to": "Stai parlando con",
        "calls.ringing_expert": "Il tuo telefono squilla per",
        "calls.ringing_client": "Stiamo chiamando il tuo cliente",
        "calls.idle": "Non sei in chiamata.",
        "calls.for": "da",
        "calls.waiting": "Lista d'attesa",
        "calls.offered": "Richieste per categoria proposte a te",
        "calls.offered_help": "Proposte a più esperti insieme: il primo che preme 1 prende il"
        " cliente.",
        "calls.col.category": "Categoria",
        "calls.col.offered_at": "Proposta alle",
        "calls.col.outcome": "Esito",
        "calls.offer.ringing": "squilla ora",
        "calls.offer.won": "l'hai presa tu",
        "calls.offer.taken": "presa da un altro esperto",
        "calls.offer.refused": "l'hai rifiutata",
        "calls.offer.no_answer": "senza risposta",
        "calls.offer.released": "ritirata",
        "calls.offer.handed_back": "restituita",
        "calls.hand_back": "Restituisci",
        "calls.hand_back_reason": "Perché non puoi aiutare",
        "calls.done.handed_back": "La richiesta è tornata agli altri esperti.",
        "calls.done.hand_back_reason": "Scrivi perché restituisci la richiesta.",
        "calls.empty": "Nessuno è in attesa.",
        "calls.position": "Posizione",
        "calls.client": "Cliente",
        "calls.waited": "In attesa da",
        "calls.attempts": "Chiamate a te",
        "calls.call_now": "Chiama ora",
        "calls.call_now_label": "Chiama ora per {alias}",
        "calls.refuse_all": "Rifiuta tutti i clienti in attesa…",
        "calls.status.open": "La tua lista d'attesa è aperta.",
        "calls.status.paused": "Sei in pausa fino alle {until}.",
        "calls.status.closed": "La tua lista d'attesa è chiusa ({reason}).",
        "calls.done.calling": "Il tuo telefono squillerà tra un momento.",
        "calls.done.too_late": "Questo cliente non è più in attesa.",
        "calls.done.phone_off": "La tua linea telefonica è disattivata: riattivala prima in"
        " Disponibilità.",
        "calls.done.refused": "Clienti in attesa rifiutati: {count}. Ognuno è stato avvisato"
        " per email.",
        "calls.live": "Questa lista si aggiorna da sola.",
        "calls.how": "Come",
        "calls.holding": "In linea",
        "calls.callback": "Da richiamare",
        "calls.callback_by": "chiamata persa: entro le {at}",
        "refuse.title": "Rifiutare tutti i clienti in attesa?",
        "refuse.text": "{count} clienti sono in attesa. Ognuno sarà avvisato per email, con un"
        " appuntamento alla tua prossima apertura. Non si può annullare.",
        "refuse.confirm": "Sì, rifiutali tutti",
        "refuse.cancel": "No, torna indietro",
    },
)
