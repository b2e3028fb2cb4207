"""My consultation types: the number calls are put through to (its line type, and the
transfer cost per minute that implies for this expert), the rate per minute, the phone
menu's PIN; category, language and email shown as they are.

The transfer cost shown is what a consultation starting now would freeze in its tariff:
it is computed by the same `make_tariff` as the call flow, never by a copy of its rules.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from aiohttp import web

from ivr_engine.config import Settings
from ivr_engine.domain.money import HALVED, WAIVED, Tariff
from ivr_engine.domain.numbers import DialPolicy
from ivr_engine.domain.pin import MIN_DIGITS, PIN_FORMAT
from ivr_engine.store import pins
from ivr_engine.store import profile as store
from ivr_engine.store.profile import Profile
from ivr_engine.web.deps import DEPS
from ivr_engine.web.panel import i18n
from ivr_engine.web.panel.fields import phone_problem, rate_problem, show_rate
from ivr_engine.web.panel.render import page, redirect, text
from ivr_engine.web.panel.session import LANG, expert_id

_SAVED = ("phone", "rate", "pin")


def phone_error(typed: str, policy: DialPolicy) -> str | None:
    """The text key of what is wrong with a number to put clients through to, or None.

    The line type of an invalid number cannot be told, and a premium-rate number would let
    the expert earn twice from one call: the engine's dialling rules refuse both.
    """
    return phone_problem(typed, policy)[1]


def parse_rate(raw: str) -> Decimal | None:
    """'1,80', '1.80' or '1.8 €' -> Decimal('1.80'); None if it is not an amount."""
    cleaned = raw.strip().removesuffix("€").strip().replace(",", ".")
    try:
        rate = Decimal(cleaned)
    except InvalidOperation:
        return None
    return rate if rate.is_finite() else None


def rate_error(rate: Decimal | None, low: Decimal, high: Decimal) -> str | None:
    if rate is None:
        return "profile.rate.not_amount"
    problem = rate_problem(rate, low, high)
    return f"profile.rate.{problem}" if problem else None


def tariff(profile: Profile, settings: Settings) -> Tariff:
    """The tariff a consultation starting now would freeze for this expert."""
    return settings.tariff(
        rate=profile.rate, category=profile.category, expert_number=profile.phone
    )


def _rule_key(t: Tariff) -> str:
    return {HALVED: "profile.rule.halved", WAIVED: "profile.rule.waived"}.get(
        t.rule, "profile.rule.full"
    )


async def _render(
    request: web.Request,
    *,
    status: int = 200,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> web.Response:
    settings = request.app[DEPS].settings
    lang = request.get(LANG, "en")
    me = await store.load(request.app[DEPS].pool, expert_id(request))
    t = tariff(me, settings)
    category_key = f"profile.category.{me.category}"
    saved = request.query.get("saved", "")
    return page(
        request,
        "profile.html",
        status=status,
        me=me,
        tariff=t,
        rule_key=_rule_key(t),
        you_pay=t.transfer_per_minute * t.rule.factor,
        category=text(request, category_key) if i18n.known(category_key) else me.category,
        rate_hint=text(
            request,
            "profile.rate.hint",
            low=show_rate(settings.rate_min, lang),
            high=show_rate(settings.rate_max, lang),
        ),
        values={
            "phone": me.phone,
            "rate": show_rate(me.rate, lang),
            **(values or {}),
        },
        errors=errors or {},
        saved=saved if saved in _SAVED else "",
        pin_min_digits=MIN_DIGITS,
        pin_locked_until=_local(me.pin_locked_until, me.language) if me.pin_locked_until else "",
    )


def _local(moment: datetime, lang: str) -> str:
    """A time as the page shows it: the server's UTC, to the minute."""
    return moment.astimezone(UTC).strftime(
        "%d/%m/%Y %H:%M UTC" if lang == "it" else "%Y-%m-%d %H:%M UTC"
    )


async def profile_page(request: web.Request) -> web.Response:
    return await _render(request)


async def change_phone(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    typed = str((await request.post()).get("phone", "")).strip()
    number, error = phone_problem(typed, deps.settings.dial_policy)
    if error is not None:
        return await _render(
            request, status=422, values={"phone": typed}, errors={"phone": text(request, error)}
        )
    await store.set_phone(deps.pool, expert_id(request), number)
    return redirect("/panel/profile?saved=phone#phone-title")


async def change_rate(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    s = deps.settings
    typed = str((await request.post()).get("rate", "")).strip()
    rate = parse_rate(typed)
    error = rate_error(rate, s.rate_min, s.rate_max)
    if error is not None or rate is None:
        low, high = (show_rate(v, request.get(LANG, "en")) for v in (s.rate_min, s.rate_max))
        message = text(request, error or "profile.rate.not_amount", low=low, high=high)
        return await _render(request, status=422, values={"rate": typed}, errors={"rate": message})
    await store.set_rate(deps.pool, expert_id(request), rate)
    return redirect("/panel/profile?saved=rate#rate-title")


async def change_pin(request: web.Request) -> web.Response:
    form = await request.post()
    pin, again = str(form.get("pin", "")), str(form.get("pin_again", ""))
    errors = {}
    if not PIN_FORMAT.fullmatch(pin):
        errors["pin"] = text(request, "profile.pin.format")
    elif pin != again:
        errors["pin_again"] = text(request, "profile.pin.mismatch")
    if errors:  # the PIN typed is never sent back into the page
        return await _render(request, status=422, errors=errors)
    await pins.set_pin(request.app[DEPS].pool, expert_id(request), pin)
    return redirect("/panel/profile?saved=pin#pin-title")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/panel/profile", profile_page)
    app.router.add_post("/panel/profile/phone", change_phone)
    app.router.add_post("/panel/profile/rate", change_rate)
    app.router.add_post("/panel/profile/pin", change_pin)


i18n.register(
    en={
        "profile.title": "My consultation types",
        "profile.about": "About you",
        "profile.category": "Category",
        "profile.language": "Language of calls and emails",
        "profile.email": "Email",
        "profile.language.en": "English",
        "profile.language.it": "Italian",
        "profile.category.general": "General",
        "profile.category.cartomancy": "Cartomancy",
        "profile.phone.title": "The number you receive calls on",
        "profile.phone.label": "Phone number",
        "profile.phone.hint": "With the country code, e.g. +39 333 123 4567.",
        "profile.phone.submit": "Save number",
        "profile.line": "Line type",
        "profile.line.mobile": "mobile",
        "profile.line.fixed": "fixed line",
        "profile.transfer.title": "Transfer cost",
        "profile.transfer.text": "What each minute of a consultation costs you to put the"
        " client through to your number; it is taken from your earnings.",
        "profile.transfer": "Transfer cost for this line",
        "profile.rule": "Rule for you",
        "profile.rule.full": "you pay the full transfer cost",
        "profile.rule.halved": "cartomancy at 1.75–1.99 €/min: halved",
        "profile.rule.waived": "cartomancy above 2.00 €/min: waived",
        "profile.you_pay": "You pay per minute",
        "profile.per_minute": "{amount} per minute",
        "profile.cartomancy_hint": "In cartomancy, a rate above 2.00 €/min waives the transfer"
        " cost and a rate from 1.75 to 1.99 €/min halves it; exactly 2.00 pays it in full.",
        "profile.rate.title": "Rate per minute",
        "profile.rate.label": "Rate per minute (€), for phone, chat and video",
        "profile.rate.hint": "From {low} to {high} €, in whole cents.",
        "profile.rate.submit": "Save rate",
        "profile.rate.not_amount": "Write an amount in euros, e.g. 1.80.",
        "profile.rate.bounds": "The rate must be between {low} and {high} € per minute.",
        "profile.rate.cents": "Use whole cents, e.g. 1.80.",
        "profile.pin.title": "PIN of the phone menu",
        "profile.pin.set": "A PIN is set. Type a new one to change it.",
        "profile.pin.unset": "No PIN yet: set one to use the phone menu.",
        "profile.pin.label": "New PIN",
        "profile.pin.hint": "6 to 8 digits.",
        "profile.pin.weak": "Your PIN has only {n} digits: choose a new one of at least {min},"
        " it is much harder to guess.",
        "profile.pin.locked": "The phone menu is locked after wrong PINs until {until}."
        " Setting a new PIN unlocks it now.",
        "profile.pin.again": "New PIN again",
        "profile.pin.submit": "Change PIN",
        "profile.pin.format": "A PIN is 6 to 8 digits.",
        "profile.pin.mismatch": "The two PINs are different.",
        "profile.saved.phone": "Number saved.",
        "profile.saved.rate": "Rate saved.",
        "profile.saved.pin": "PIN changed.",
    },
    it={
        "profile.title": "Le mie tipologie di consulto",
        "profile.about": "I tuoi dati",
        "profile.category": "Categoria",
        "profile.language": "Lingua di chiamate ed email",
        "profile.email": "Email",
        "profile.language.en": "Inglese",
        "profile.language.it": "Italiano",
        "profile.category.general": "Generale",
        "profile.category.cartomancy": "Cartomanzia",
        "profile.phone.title": "Il numero su cui ricevi le chiamate",
        "profile.phone.label": "Numero di telefono",
        "profile.phone.hint": "Con il prefisso internazionale, ad es. +39 333 123 4567.",
        "profile.phone.submit": "Salva il numero",
        "profile.line": "Tipo di linea",
        "profile.line.mobile": "cellulare",
        "profile.line.fixed": "rete fissa",
        "profile.transfer.title": "Costo di trasferimento",
        "profile.transfer.text": "Quanto ti costa ogni minuto di consulto passare il cliente al"
        " tuo numero; viene tolto dai tuoi guadagni.",
        "profile.transfer": "Costo di trasferimento per questa linea",
        "profile.rule": "Regola per te",
        "profile.rule.full": "paghi l'intero costo di trasferimento",
        "profile.rule.halved": "cartomanzia da 1,75 a 1,99 €/min: dimezzato",
        "profile.rule.waived": "cartomanzia oltre 2,00 €/min: non lo paghi",
        "profile.you_pay": "Paghi al minuto",
        "profile.per_minute": "{amount} al minuto",
        "profile.cartomancy_hint": "In cartomanzia, con una tariffa oltre 2,00 €/min il costo di"
        " trasferimento non si paga, da 1,75 a 1,99 €/min si paga a metà; con 2,00 esatti si"
        " paga per intero.",
        "profile.rate.title": "Tariffa al minuto",
        "profile.rate.label": "Tariffa al minuto (€), per telefono, chat e video",
        "profile.rate.hint": "Da {low} a {high} €, in centesimi interi.",
        "profile.rate.submit": "Salva la tariffa",
        "profile.rate.not_amount": "Scrivi un importo in euro, ad es. 1,80.",
        "profile.rate.bounds": "La tariffa deve essere tra {low} e {high} € al minuto.",
        "profile.rate.cents": "Usa centesimi interi, ad es. 1,80.",
        "profile.pin.title": "PIN del menu telefonico",
        "profile.pin.set": "Hai già un PIN. Scrivine uno nuovo per cambiarlo.",
        "profile.pin.unset": "Non hai ancora un PIN: impostalo per usare il menu telefonico.",
        "profile.pin.label": "Nuovo PIN",
        "profile.pin.hint": "Da 6 a 8 cifre.",
        "profile.pin.weak": "Il tuo PIN ha solo {n} cifre: scegline uno nuovo di almeno"
        " {min}, è molto più difficile da indovinare.",
        "profile.pin.locked": "Il menu telefonico è bloccato dopo PIN errati fino al"
        " {until}. Impostando un nuovo PIN si sblocca subito.",
        "profile.pin.again": "Ripeti il nuovo PIN",
        "profile.pin.submit": "Cambia il PIN",
        "profile.pin.format": "Il PIN è composto da 6 a 8 cifre.",
        "profile.pin.mismatch": "I due PIN non coincidono.",
        "profile.saved.phone": "Numero salvato.",
        "profile.saved.rate": "Tariffa salvata.",
        "profile.saved.pin": "PIN cambiato.",
    },
)
