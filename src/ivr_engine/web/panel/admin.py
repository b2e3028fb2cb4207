"""The service staff's pages: the overview (calls in progress across experts, live, and
the day's figures) and the experts (list, create, edit, the acceptance prompt switch).

The guard (panel/auth.py) lets only admin accounts reach /admin.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from aiohttp import web

from ivr_engine.store import admin as store
from ivr_engine.store import holding as holding_store
from ivr_engine.store import live as live_store
from ivr_engine.store import offers
from ivr_engine.web import live
from ivr_engine.web.deps import DEPS
from ivr_engine.web.panel import admin_experts as experts
from ivr_engine.web.panel import i18n
from ivr_engine.web.panel.render import page

# The figures' "today" is the service's day, wherever the engine's clock runs.
SERVICE_ZONE = "Europe/Rome"
CALLS_IN_DAYS = 7  # days of calls-in figures on the overview


# -- overview -----------------------------------------------------------------------------
async def overview(request: web.Request) -> web.Response:
    pool = request.app[DEPS].pool
    zone = ZoneInfo(SERVICE_ZONE)
    today = datetime.now(zone).date()
    figures = await store.day_figures(pool, today, zone)
    days = [today - timedelta(days=n) for n in range(CALLS_IN_DAYS)]
    calls_in = await holding_store.figures(pool, days, zone)
    calls = await live_store.all_active(pool)
    category = await offers.recent(pool)
    holding = await holding_store.holding_callers(pool)
    return page(
        request,
        "admin.html",
        calls=calls,
        holding=holding,
        figures=figures,
        calls_in=calls_in,
        category=category,
        tz=SERVICE_ZONE,
    )


async def live_fragment(request: web.Request) -> web.Response:
    pool = request.app[DEPS].pool
    calls = await live_store.all_active(pool)
    holding = await holding_store.holding_callers(pool)
    return page(request, "_admin_live.html", calls=calls, holding=holding, tz=SERVICE_ZONE)


async def events(request: web.Request) -> web.StreamResponse:
    return await live.stream(request, request.app[DEPS].hub, None)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin", overview)
    app.router.add_get("/admin/live", live_fragment)
    app.router.add_get("/admin/events", events)
    app.router.add_get("/admin/experts", experts.experts_page)
    app.router.add_get(
        "/admin/experts/new", experts.new_form
    )  # before {expert_id}: first match wins
    app.router.add_post("/admin/experts/new", experts.create)
    app.router.add_get("/admin/experts/{expert_id}", experts.edit_form)
    app.router.add_post("/admin/experts/{expert_id}", experts.update)
    app.router.add_post("/admin/experts/{expert_id}/acceptance", experts.acceptance)


i18n.register(
    en={
        "admin.title": "Service overview",
        "admin.category_requests": "Category requests",
        "admin.category_empty": "No category request yet.",
        "admin.col.request": "Request",
        "admin.col.offered": "Offered to",
        "admin.col.taken_by": "Taken by",
        "admin.live": "Calls in progress",
        "admin.live_note": "This list updates by itself.",
        "admin.live_empty": "No call in progress.",
        "admin.holding": "Callers holding on the line",
        "admin.holding_empty": "Nobody is holding on the line.",
        "admin.col.position": "Position",
        "admin.col.day": "Day",
        "admin.calls_in": "Calls to the service numbers",
        "admin.in.calls_in": "Calls in",
        "admin.in.answered": "Answered",
        "admin.in.abandoned": "Abandoned",
        "admin.in.speed": "Average speed of answer",
        "admin.in.withheld": "Withheld numbers",
        "admin.in.called_back": "Missed calls called back in time",
        "admin.in_legend.calls_in": "calls to a service number that day.",
        "admin.in_legend.answered": "calls bridged to an expert while the caller was on the line.",
        "admin.in_legend.abandoned": "callers who hung up while holding (or whose call the"
        " engine had to end): each is a missed call, called back.",
        "admin.in_legend.speed": "mean time from the start of the call to the expert, for"
        " answered calls.",
        "admin.in_legend.withheld": "callers whose number was withheld or cannot be called"
        " back: they were told so.",
        "admin.in_legend.called_back": "missed calls of that day whose call back started before"
        " the promised time (IVR_MISSED_CALLBACK_MINUTES), out of those due or called back.",
        "admin.col.expert": "Expert",
        "admin.col.client": "Client",
        "admin.col.state": "State",
        "admin.col.since": "For",
        "admin.state.ringing_expert": "Ringing the expert",
        "admin.state.ringing_client": "Calling the client",
        "admin.state.connected": "In consultation",
        "admin.figures": "Today's figures",
        "admin.figures_day": "{day}, service time ({zone}).",
        "admin.fig.received": "Requests received",
        "admin.fig.answered": "Answered",
        "admin.fig.refused": "Refused",
        "admin.fig.lost": "Lost",
        "admin.fig.speed": "Average speed of answer",
        "admin.fig.abandonment": "Abandonment rate",
        "admin.fig.abandonment_of": "{part} of {whole} ended",
        "admin.legend": "How these are counted",
        "admin.legend.received": "requests created today.",
        "admin.legend.answered": "requests whose consultation started today (the call was"
        " bridged).",
        "admin.legend.refused": "requests that ended today refused by the expert.",
        "admin.legend.lost": "requests that ended today lost: the client left or hung up before"
        " being connected, or the expert never answered or hung up before the bridge.",
        "admin.legend.speed": "mean time from a request's creation to the start of its"
        " consultation, over the requests answered today.",
        "admin.legend.abandonment": "requests that ended today because the client left the"
        " waiting list or hung up before being connected, divided by all the requests that"
        " ended today (— when none ended).",
        "admin.experts.title": "Experts",
        "admin.experts.new": "New expert",
        "admin.experts.empty": "No experts yet.",
        "admin.col.alias": "Alias",
        "admin.col.category": "Category",
        "admin.col.phone": "Phone",
        "admin.col.rate": "Rate per minute",
        "admin.col.language": "Language",
        "admin.col.email": "Email",
        "admin.col.acceptance": "Acceptance prompt",
        "admin.col.login": "Panel sign-in",
        "admin.category.general": "General",
        "admin.category.cartomancy": "Cartomancy",
        "admin.category.legal": "Legal",
        "admin.category.travel": "Travel",
        "admin.category.technical": "Technical",
        "admin.line.mobile": "mobile",
        "admin.line.fixed": "fixed line",
        "admin.language.en": "English",
        "admin.language.it": "Italian",
        "admin.on": "on",
        "admin.off": "off",
        "admin.yes": "yes",
        "admin.no": "no",
        "admin.switch_on": "Switch on",
        "admin.switch_off": "Switch off",
        "admin.switch_on_label": "Switch on the acceptance prompt for {alias}",
        "admin.switch_off_label": "Switch off the acceptance prompt for {alias}",
        "admin.edit_label": "Edit {alias}",
        "admin.done.created": "Expert created.",
        "admin.done.acceptance": "Acceptance prompt updated.",
        "admin.expert.new_title": "New expert",
        "admin.expert.edit_title": "Expert {alias}",
        "admin.expert.create": "Create the expert",
        "admin.expert.save": "Save",
        "admin.expert.back": "Back to the experts",
        "admin.expert.acceptance_now": "Acceptance prompt: {state}.",
        "admin.expert.acceptance_help": "When on, the expert hears who is calling and presses"
        " a key to accept; when off, the client is connected as soon as the expert answers.",
        "admin.expert.login_yes": "This expert can sign in to the panel.",
        "admin.expert.login_no": "This expert has no panel sign-in yet: give an email and a"
        " password to create one.",
        "admin.field.alias": "Alias",
        "admin.field.category": "Category",
        "admin.field.phone": "Phone number",
        "admin.field.phone_hint": "International format, e.g. +39 333 123 4567.",
        "admin.field.line": "Line type: {line}.",
        "admin.field.rate": "Rate per minute (€)",
        "admin.field.rate_hint": "From {low} to {high}, e.g. 1.80.",
        "admin.field.language": "Language",
        "admin.field.email": "Email",
        "admin.field.email_hint": "Needed for a panel sign-in.",
        "admin.field.acceptance": "Ask the expert to accept each call with a key",
        "admin.field.password": "Panel password",
        "admin.field.password_new_hint": "Optional: at least {n} characters. It gives the"
        " expert a panel sign-in.",
        "admin.field.password_edit_hint": "At least {n} characters. Leave empty to keep the"
        " current one.",
        "admin.error.required": "This field is required.",
        "admin.error.too_long": "At most {n} characters.",
        "admin.error.choice": "Choose one of the options.",
        "admin.error.control": "Line breaks and other control characters are not allowed.",
        "admin.error.rate_format": "Write an amount, e.g. 1.80.",
        "admin.error.rate_range": "The rate must be between {low} and {high} per minute.",
        "admin.error.rate_cents": "Use whole cents, e.g. 1.80.",
        "admin.error.email": "Not an email address.",
        "admin.error.email_needed": "A panel sign-in needs an email.",
        "admin.error.email_taken": "Another account already uses this email.",
        "admin.error.password_short": "The password needs at least {n} characters.",
    },
    it={
        "admin.title": "Panoramica del servizio",
        "admin.category_requests": "Richieste per categoria",
        "admin.category_empty": "Nessuna richiesta per categoria.",
        "admin.col.request": "Richiesta",
        "admin.col.offered": "Proposta a",
        "admin.col.taken_by": "Presa da",
        "admin.live": "Chiamate in corso",
        "admin.live_note": "Questa lista si aggiorna da sola.",
        "admin.live_empty": "Nessuna chiamata in corso.",
        "admin.holding": "Chiamanti in linea in attesa",
        "admin.holding_empty": "Nessuno è in attesa in linea.",
        "admin.col.position": "Posizione",
        "admin.col.day": "Giorno",
        "admin.calls_in": "Chiamate ai numeri del servizio",
        "admin.in.calls_in": "Chiamate ricevute",
        "admin.in.answered": "Risposte",
        "admin.in.abandoned": "Abbandonate",
        "admin.in.speed": "Tempo medio di risposta",
        "admin.in.withheld": "Numeri nascosti",
        "admin.in.called_back": "Chiamate perse richiamate in tempo",
        "admin.in_legend.calls_in": "chiamate a un numero del servizio quel giorno.",
        "admin.in_legend.answered": "chiamate collegate a un esperto mentre il chiamante era in"
        " linea.",
        "admin.in_legend.abandoned": "chiamanti che hanno riagganciato durante l'attesa (o la"
        " cui chiamata il motore ha dovuto chiudere): ognuna è una chiamata persa, richiamata.",
        "admin.in_legend.speed": "tempo medio dall'inizio della chiamata all'esperto, per le"
        " chiamate risposte.",
        "admin.in_legend.withheld": "chiamanti con numero nascosto o non richiamabile: è stato"
        " detto loro.",
        "admin.in_legend.called_back": "chiamate perse di quel giorno la cui richiamata è"
        " partita entro l'ora promessa (IVR_MISSED_CALLBACK_MINUTES), su quelle scadute o"
        " richiamate.",
        "admin.col.expert": "Esperto",
        "admin.col.client": "Cliente",
        "admin.col.state": "Stato",
        "admin.col.since": "Da",
        "admin.state.ringing_expert": "Squilla all'esperto",
        "admin.state.ringing_client": "Chiamata al cliente",
        "admin.state.connected": "In consulto",
        "admin.figures": "I numeri di oggi",
        "admin.figures_day": "{day}, ora del servizio ({zone}).",
        "admin.fig.received": "Richieste ricevute",
        "admin.fig.answered": "Con risposta",
        "admin.fig.refused": "Rifiutate",
        "admin.fig.lost": "Perse",
        "admin.fig.speed": "Tempo medio di risposta",
        "admin.fig.abandonment": "Tasso di abbandono",
        "admin.fig.abandonment_of": "{part} su {whole} concluse",
        "admin.legend": "Come si contano",
        "admin.legend.received": "richieste arrivate oggi.",
        "admin.legend.answered": "richieste il cui consulto è iniziato oggi (la chiamata è"
        " stata collegata).",
        "admin.legend.refused": "richieste concluse oggi con il rifiuto dell'esperto.",
        "admin.legend.lost": "richieste concluse oggi senza consulto: il cliente è uscito"
        " dalla lista o ha riattaccato prima del collegamento, oppure l'esperto non ha mai"
        " risposto o ha riattaccato prima.",
        "admin.legend.speed": "tempo medio tra l'arrivo di una richiesta e l'inizio del suo"
        " consulto, sulle richieste con risposta oggi.",
        "admin.legend.abandonment": "richieste concluse oggi perché il cliente è uscito dalla"
        " lista d'attesa o ha riattaccato prima del collegamento, diviso tutte le richieste"
        " concluse oggi (— se nessuna si è conclusa).",
        "admin.experts.title": "Esperti",
        "admin.experts.new": "Nuovo esperto",
        "admin.experts.empty": "Ancora nessun esperto.",
        "admin.col.alias": "Nome d'arte",
        "admin.col.category": "Categoria",
        "admin.col.phone": "Telefono",
        "admin.col.rate": "Tariffa al minuto",
        "admin.col.language": "Lingua",
        "admin.col.email": "Email",
        "admin.col.acceptance": "Conferma con tasto",
        "admin.col.login": "Accesso al pannello",
        "admin.category.general": "Generale",
        "admin.category.cartomancy": "Cartomanzia",
        "admin.category.legal": "Legale",
        "admin.category.travel": "Viaggi",
        "admin.category.technical": "Tecnica",
        "admin.line.mobile": "cellulare",
        "admin.line.fixed": "fisso",
        "admin.language.en": "Inglese",
        "admin.language.it": "Italiano",
        "admin.on": "attiva",
        "admin.off": "disattivata",
        "admin.yes": "sì",
        "admin.no": "no",
        "admin.switch_on": "Attiva",
        "admin.switch_off": "Disattiva",
        "admin.switch_on_label": "Attiva la conferma con tasto per {alias}",
        "admin.switch_off_label": "Disattiva la conferma con tasto per {alias}",
        "admin.edit_label": "Modifica {alias}",
        "admin.done.created": "Esperto creato.",
        "admin.done.acceptance": "Conferma con tasto aggiornata.",
        "admin.expert.new_title": "Nuovo esperto",
        "admin.expert.edit_title": "Esperto {alias}",
        "admin.expert.create": "Crea l'esperto",
        "admin.expert.save": "Salva",
        "admin.expert.back": "Torna agli esperti",
        "admin.expert.acceptance_now": "Conferma con tasto: {state}.",
        "admin.expert.acceptance_help": "Se è attiva, l'esperto sente chi chiama e preme un"
        " tasto per accettare; se è disattivata, il cliente viene collegato appena l'esperto"
        " risponde.",
        "admin.expert.login_yes": "Questo esperto può accedere al pannello.",
        "admin.expert.login_no": "Questo esperto non ha ancora un accesso al pannello: indica"
        " un'email e una password per crearlo.",
        "admin.field.alias": "Nome d'arte",
        "admin.field.category": "Categoria",
        "admin.field.phone": "Numero di telefono",
        "admin.field.phone_hint": "Con il prefisso internazionale, ad es. +39 333 123 4567.",
        "admin.field.line": "Tipo di linea: {line}.",
        "admin.field.rate": "Tariffa al minuto (€)",
        "admin.field.rate_hint": "Da {low} a {high}, ad es. 1,80.",
        "admin.field.language": "Lingua",
        "admin.field.email": "Email",
        "admin.field.email_hint": "Serve per accedere al pannello.",
        "admin.field.acceptance": "Chiedi all'esperto di accettare ogni chiamata con un tasto",
        "admin.field.password": "Password del pannello",
        "admin.field.password_new_hint": "Facoltativa: almeno {n} caratteri. Dà all'esperto"
        " l'accesso al pannello.",
        "admin.field.password_edit_hint": "Almeno {n} caratteri. Lascia vuoto per non cambiarla.",
        "admin.error.required": "Questo campo è obbligatorio.",
        "admin.error.too_long": "Al massimo {n} caratteri.",
        "admin.error.choice": "Scegli una delle opzioni.",
        "admin.error.control": "A capo e altri caratteri di controllo non sono ammessi.",
        "admin.error.rate_format": "Scrivi un importo, ad es. 1,80.",
        "admin.error.rate_range": "La tariffa deve essere tra {low} e {high} al minuto.",
        "admin.error.rate_cents": "Usa centesimi interi, ad es. 1,80.",
        "admin.error.email": "Non è un indirizzo email.",
        "admin.error.email_needed": "Per accedere al pannello serve un'email.",
        "admin.error.email_taken": "Un altro account usa già questa email.",
        "admin.error.password_short": "La password deve avere almeno {n} caratteri.",
    },
)
