"""The Client page: one client's history with the signed-in expert, the expert's private
notes on them, and "start a conversation" (a message the client receives by email).

The expert sees the client's alias only: the marketplace never shows an expert a client's
phone number or email address.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ivr_engine.store import clients as store
from ivr_engine.store import planning as planning_store
from ivr_engine.web.deps import DEPS
from ivr_engine.web.panel import i18n
from ivr_engine.web.panel.fields import parse_id
from ivr_engine.web.panel.render import page, problem, redirect, text
from ivr_engine.web.panel.session import expert_id


def _body(form: Any, name: str) -> str:
    # Browsers send a textarea's line breaks as CRLF; store and count plain newlines.
    return str(form.get(name, "")).replace("\r\n", "\n").strip()


def _check(request: web.Request, body: str) -> str | None:
    if not body:
        return text(request, "client.error.required")
    if len(body) > store.MAX_TEXT:
        return text(request, "client.error.too_long", limit=store.MAX_TEXT, length=len(body))
    return None


async def _show(
    request: web.Request, client_id: int, *, status: int = 200, **form: Any
) -> web.Response:
    pool = request.app[DEPS].pool
    me = expert_id(request)
    client = await store.summary(pool, me, client_id)
    if client is None:
        return problem(request, 404, "error.not_found")
    av = await planning_store.load(pool, me)
    context: dict[str, Any] = {"note": "", "message": "", "errors": {}, **form}
    return page(
        request,
        "client.html",
        status=status,
        client=client,
        tz=av.planning.timezone,
        latest=await store.latest_consultations(pool, me, client_id),
        notes=await store.notes(pool, me, client_id),
        messages=await store.messages(pool, me, client_id),
        done=request.query.get("done", ""),
        limit=store.MAX_TEXT,
        **context,
    )


async def client_page(request: web.Request) -> web.Response:
    client_id = parse_id(request.match_info["client_id"])
    if client_id is None:
        return problem(request, 404, "error.not_found")
    return await _show(request, client_id)


async def add_note(request: web.Request) -> web.Response:
    client_id = parse_id(request.match_info["client_id"])
    if client_id is None:
        return problem(request, 404, "error.not_found")
    body = _body(await request.post(), "note")
    error = _check(request, body)
    if error is not None:
        return await _show(request, client_id, status=422, note=body, errors={"note": error})
    pool = request.app[DEPS].pool
    if await store.add_note(pool, expert_id(request), client_id, body) is None:
        return problem(request, 404, "error.not_found")
    return redirect(f"/panel/clients/{client_id}?done=note#notes")


async def send_message(request: web.Request) -> web.Response:
    client_id = parse_id(request.match_info["client_id"])
    if client_id is None:
        return problem(request, 404, "error.not_found")
    deps = request.app[DEPS]
    me = expert_id(request)
    client = await store.summary(deps.pool, me, client_id)
    if client is None:
        return problem(request, 404, "error.not_found")
    body = _body(await request.post(), "message")
    error = _check(request, body)
    if error is None and await store.send_message(deps.pool, me, client_id, body) is None:
        error = text(request, "client.error.no_email", alias=client.alias)
    if error is not None:
        return await _show(request, client_id, status=422, message=body, errors={"message": error})
    return redirect(f"/panel/clients/{client_id}?done=sent#messages")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/panel/clients/{client_id}", client_page)
    app.router.add_post("/panel/clients/{client_id}/notes", add_note)
    app.router.add_post("/panel/clients/{client_id}/messages", send_message)


i18n.register(
    en={
        "client.title": "Client {alias}",
        "client.privacy": "To protect privacy, you see your clients by their alias only.",
        "client.history": "Your consultations with {alias}",
        "client.count": "Consultations",
        "client.minutes": "Total talk time",
        "client.last": "Last consultation",
        "client.paid": "Paid by the client in total",
        "client.earned": "Your earnings in total",
        "client.none": "You have not had a consultation with {alias} yet.",
        "client.latest": "Latest consultations",
        "client.date": "Date",
        "client.duration": "Duration",
        "client.price": "Paid by the client",
        "client.earnings": "Your earnings",
        "client.all": "All my consultations",
        "client.notes": "Your notes",
        "client.notes_private": "Only you can see these notes.",
        "client.notes_empty": "No notes yet.",
        "client.note_label": "New note",
        "client.note_add": "Add the note",
        "client.messages": "Start a conversation with {alias}…",
        "client.messages_how": "{alias} receives your message by email. Neither of you sees"
        " the other's contact details.",
        "client.message_label": "Your message",
        "client.message_send": "Send the message",
        "client.messages_sent": "Messages you sent",
        "client.no_email_hint": "{alias} has not given an email address, so a message"
        " cannot reach them.",
        "client.hint": "At most {limit} characters.",
        "client.delivery.queued": "being sent",
        "client.delivery.sent": "delivered to the mail server",
        "client.delivery.failed": "could not be delivered",
        "client.done.note": "Note added.",
        "client.done.sent": "Message sent. {alias} will receive it by email.",
        "client.error.required": "Write something first.",
        "client.error.too_long": "Too long: {length} characters, at most {limit}.",
        "client.error.no_email": "{alias} has no email address: the message cannot be"
        " delivered, so it was not sent.",
    },
    it={
        "client.title": "Cliente {alias}",
        "client.privacy": "Per tutelare la riservatezza, vedi i tuoi clienti solo con il"
        " loro pseudonimo.",
        "client.history": "I tuoi consulti con {alias}",
        "client.count": "Consulti",
        "client.minutes": "Durata totale delle conversazioni",
        "client.last": "Ultimo consulto",
        "client.paid": "Pagato in totale dal cliente",
        "client.earned": "Il tuo guadagno totale",
        "client.none": "Non hai ancora avuto consulti con {alias}.",
        "client.latest": "Ultimi consulti",
        "client.date": "Data",
        "client.duration": "Durata",
        "client.price": "Pagato dal cliente",
        "client.earnings": "Il tuo guadagno",
        "client.all": "Tutti i miei consulti",
        "client.notes": "Le tue note",
        "client.notes_private": "Solo tu puoi vedere queste note.",
        "client.notes_empty": "Ancora nessuna nota.",
        "client.note_label": "Nuova nota",
        "client.note_add": "Aggiungi la nota",
        "client.messages": "Inizia una conversazione con {alias}…",
        "client.messages_how": "{alias} riceve il tuo messaggio per email: né tu né il"
        " cliente vedete i recapiti dell'altro.",
        "client.message_label": "Il tuo messaggio",
        "client.message_send": "Invia il messaggio",
        "client.messages_sent": "Messaggi che hai inviato",
        "client.no_email_hint": "{alias} non ha indicato un indirizzo email, quindi non può"
        " ricevere messaggi.",
        "client.hint": "Al massimo {limit} caratteri.",
        "client.delivery.queued": "in invio",
        "client.delivery.sent": "consegnato al server di posta",
        "client.delivery.failed": "non è stato possibile consegnarlo",
        "client.done.note": "Nota aggiunta.",
        "client.done.sent": "Messaggio inviato. {alias} lo riceverà per email.",
        "client.error.required": "Scrivi qualcosa prima di inviare.",
        "client.error.too_long": "Troppo lungo: {length} caratteri, al massimo {limit}.",
        "client.error.no_email": "{alias} non ha un indirizzo email: il messaggio non può"
        " essere consegnato, quindi non è stato inviato.",
    },
)
