"""My consultations: the expert's consultations, newest first, 20 a page, and the billing
detail of each one explained in plain words (what the client paid, what the service keeps,
what the call cost, what the expert earns).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

from ivr_engine.store import clients as clients_store
from ivr_engine.store import consultations as store
from ivr_engine.store import planning as planning_store
from ivr_engine.web.deps import DEPS
from ivr_engine.web.panel import i18n
from ivr_engine.web.panel.fields import parse_id
from ivr_engine.web.panel.render import page, problem
from ivr_engine.web.panel.session import LANG, expert_id

PAGE_SIZE = 20


def _with_moments(detail: dict[str, Any]) -> dict[str, Any]:
    """The detail with its ISO times as datetimes, for the templates' ``local`` filter."""
    end = detail["end"]
    return {
        **detail,
        "start_at": datetime.fromisoformat(detail["start"]),
        "end_at": datetime.fromisoformat(end) if end else None,
    }


def percent(value: str, lang: str) -> str:
    """'10.00' -> '10 %', '12.50' -> '12.5 %' (Italian: '12,5 %')."""
    digits = f"{Decimal(value):f}"
    if "." in digits:
        digits = digits.rstrip("0").rstrip(".")
    return (digits.replace(".", ",") if lang == "it" else digits) + " %"


def _rule(factor: str, lang: str) -> tuple[str, str]:
    """The share of the transfer cost the expert pays, as a word and a percentage."""
    share = Decimal(factor)
    words = {Decimal(1): "full", Decimal("0.5"): "half", Decimal(0): "none"}
    return words.get(share, "other"), percent(str(share * 100), lang)


async def _timezone(request: web.Request, me: int) -> str:
    av = await planning_store.load(request.app[DEPS].pool, me)
    return av.planning.timezone


async def consultations_page(request: web.Request) -> web.Response:
    me = expert_id(request)
    raw = request.query.get("before", "")
    before = parse_id(raw) if raw else None
    if raw and before is None:
        return problem(request, 404, "error.not_found")
    # One more than a page tells whether an older page exists.
    rows = await store.page(request.app[DEPS].pool, me, limit=PAGE_SIZE + 1, before_id=before)
    shown = [_with_moments(r) for r in rows[:PAGE_SIZE]]
    older = shown[-1]["id"] if len(rows) > PAGE_SIZE else None
    return page(
        request,
        "consultations.html",
        consultations=shown,
        older=older,
        first_page=before is None,
        tz=await _timezone(request, me),
    )


async def consultation_page(request: web.Request) -> web.Response:
    consultation_id = parse_id(request.match_info["consultation_id"])
    if consultation_id is None:
        return problem(request, 404, "error.not_found")
    me = expert_id(request)
    found = await clients_store.consultation(request.app[DEPS].pool, me, consultation_id)
    if found is None:
        return problem(request, 404, "error.not_found")
    lang = request.get(LANG, "en")
    rule, share = _rule(found["transfer_factor"], lang)
    return page(
        request,
        "consultation.html",
        c=_with_moments(found),
        commission_percent=percent(found["commission_percent"], lang),
        rule=rule,
        share=share,
        tz=await _timezone(request, me),
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/panel/consultations", consultations_page)
    app.router.add_get("/panel/consultations/{consultation_id}", consultation_page)


i18n.register(
    en={
        "consult.title": "My consultations",
        "consult.empty": "You have no consultations yet.",
        "consult.date": "Date",
        "consult.client": "Client",
        "consult.duration": "Duration",
        "consult.paid": "Paid by the client",
        "consult.earnings": "Your earnings",
        "consult.open": "Details",
        "consult.open_label": "Details of consultation no. {id}",
        "consult.in_progress": "in progress",
        "consult.detail_title": "Consultation no. {id}",
        "consult.when": "When",
        "consult.start": "Started",
        "consult.end": "Ended",
        "consult.ended_by": "Who hung up",
        "consult.ended_by.expert": "you",
        "consult.ended_by.client": "the client",
        "consult.ended_by.engine": "the service (the line dropped or the service restarted)",
        "consult.time": "Time",
        "consult.billed": "Talk time",
        "consult.billed_why": "How long you and the client were actually connected.",
        "consult.charged": "Charged time",
        "consult.charged_why": "The time the client pays for: the talk time, rounded up.",
        "consult.step": "Calls are charged in steps of {seconds} seconds.",
        "consult.minimum": "Every consultation counts at least {seconds} seconds.",
        "consult.money": "Money",
        "consult.category": "Consultation type",
        "consult.rate": "Your rate",
        "consult.per_minute": "{amount} per minute",
        "consult.rate_why": "Your rate when the consultation began; changing it later does"
        " not change this consultation.",
        "consult.price": "Paid by the client",
        "consult.price_why": "Charged time × your rate.",
        "consult.commission": "Service commission",
        "consult.commission_why": "The service keeps {percent} of what the client paid.",
        "consult.transfer": "Cost of putting the call through to you",
        "consult.transfer_why": "Your phone is a {line} line: putting a call through to it"
        " costs {amount} per minute of charged time.",
        "consult.rule.full": "You pay this cost in full.",
        "consult.rule.half": "You pay half of it.",
        "consult.rule.none": "You pay nothing for it.",
        "consult.rule.other": "You pay {factor} of it.",
        "consult.line.mobile": "mobile",
        "consult.line.fixed": "landline",
        "consult.earned": "Your earnings",
        "consult.earned_why": "What the client paid, minus the commission, minus the cost of"
        " putting the call through.",
        "consult.sum": "{price} − {commission} − {transfer} = {earnings}",
        "consult.note": "Note from the billing",
        "consult.not_billed": "This consultation is not over yet: its bill is written when"
        " it ends.",
        "consult.back": "Back to my consultations",
    },
    it={
        "consult.title": "I miei consulti",
        "consult.empty": "Non hai ancora nessun consulto.",
        "consult.date": "Data",
        "consult.client": "Cliente",
        "consult.duration": "Durata",
        "consult.paid": "Pagato dal cliente",
        "consult.earnings": "Il tuo guadagno",
        "consult.open": "Dettagli",
        "consult.open_label": "Dettagli del consulto n. {id}",
        "consult.in_progress": "in corso",
        "consult.detail_title": "Consulto n. {id}",
        "consult.when": "Quando",
        "consult.start": "Iniziato",
        "consult.end": "Terminato",
        "consult.ended_by": "Chi ha chiuso la chiamata",
        "consult.ended_by.expert": "tu",
        "consult.ended_by.client": "il cliente",
        "consult.ended_by.engine": "il servizio (la linea è caduta o il servizio è stato"
        " riavviato)",
        "consult.time": "Tempo",
        "consult.billed": "Durata della conversazione",
        "consult.billed_why": "Quanto tempo tu e il cliente siete stati effettivamente in linea.",
        "consult.charged": "Tempo addebitato",
        "consult.charged_why": "Il tempo che il cliente paga: la durata della conversazione,"
        " arrotondata per eccesso.",
        "consult.step": "Le chiamate si pagano a scatti di {seconds} secondi.",
        "consult.minimum": "Ogni consulto conta almeno {seconds} secondi.",
        "consult.money": "Importi",
        "consult.category": "Tipo di consulto",
        "consult.rate": "La tua tariffa",
        "consult.per_minute": "{amount} al minuto",
        "consult.rate_why": "La tua tariffa all'inizio del consulto; se la cambi in seguito,"
        " questo consulto non cambia.",
        "consult.price": "Pagato dal cliente",
        "consult.price_why": "Tempo addebitato × la tua tariffa.",
        "consult.commission": "Commissione del servizio",
        "consult.commission_why": "Il servizio trattiene il {percent} di quanto ha pagato il"
        " cliente.",
        "consult.transfer": "Costo per inoltrarti la chiamata",
        "consult.transfer_why": "Il tuo telefono è una linea {line}: inoltrarvi una chiamata"
        " costa {amount} per ogni minuto addebitato.",
        "consult.rule.full": "Questo costo è tutto a tuo carico.",
        "consult.rule.half": "Ne paghi la metà.",
        "consult.rule.none": "Non lo paghi affatto.",
        "consult.rule.other": "Ne paghi {factor}.",
        "consult.line.mobile": "mobile",
        "consult.line.fixed": "fissa",
        "consult.earned": "Il tuo guadagno",
        "consult.earned_why": "Quanto ha pagato il cliente, meno la commissione, meno il costo"
        " per inoltrarti la chiamata.",
        "consult.sum": "{price} − {commission} − {transfer} = {earnings}",
        "consult.note": "Nota della fatturazione",
        "consult.not_billed": "Questo consulto non è ancora finito: il conto viene calcolato"
        " quando termina.",
        "consult.back": "Torna ai miei consulti",
    },
)
