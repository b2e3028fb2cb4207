"""The panel's words in English and Italian.

Each page module registers its own texts with ``register(en=..., it=...)``; both languages
must give the same keys (checked at import, so a missing translation fails at start-up,
not in front of an expert). Templates call ``t("key", name=...)``.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

LANGUAGES = ("en", "it")
LANG_COOKIE = "ivr_lang"

_TEXT: dict[str, dict[str, str]] = {lang: {} for lang in LANGUAGES}


def register(*, en: Mapping[str, str], it: Mapping[str, str]) -> None:
    if set(en) != set(it):
        raise ValueError(f"texts differ between en and it: {sorted(set(en) ^ set(it))}")
    clash = set(en) & set(_TEXT["en"])
    if clash:
        raise ValueError(f"texts registered twice: {sorted(clash)}")
    _TEXT["en"].update(en)
    _TEXT["it"].update(it)


def translate(lang: str, key: str, **values: object) -> str:
    text = _TEXT[lang if lang in _TEXT else "en"][key]
    return text.format(**values) if values else text


def known(key: str) -> bool:
    return all(key in _TEXT[lang] for lang in LANGUAGES)


def choose(request: web.Request, preferred: str | None) -> str:
    """The language switch (a cookie) wins, then the account's language, then the
    browser's Accept-Language, then English."""
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in LANGUAGES:
        return str(chosen)
    if preferred in LANGUAGES:
        return str(preferred)
    for part in request.headers.get("Accept-Language", "").split(","):
        code = part.split(";")[0].strip()[:2].lower()
        if code in LANGUAGES:
            return code
    return "en"


register(
    en={
        "app.title": "Expert control panel",
        "nav.calls": "Calls",
        "nav.availability": "Availability",
        "nav.profile": "My consultation types",
        "nav.consultations": "My consultations",
        "nav.admin": "Service overview",
        "nav.experts": "Experts",
        "nav.sign_out": "Sign out",
        "nav.skip": "Skip to content",
        "lang.switch": "Italiano",
        "error.forbidden": "You cannot open this page.",
        "error.not_found": "This page does not exist, or it is not yours.",
        "error.csrf": "This form has expired. Go back, reload the page and try again.",
        "error.title": "Something is wrong",
        "error.unavailable": "The service is unavailable for a moment. Nothing you did was"
        " lost half-way: try again in a minute.",
        "error.back": "Back to the panel",
        "form.saved": "Saved.",
        "form.fix": "Please correct the fields marked below.",
        "login.title": "Sign in",
        "login.email": "Email",
        "login.password": "Password",
        "login.submit": "Sign in",
        "login.wrong": "Wrong email or password.",
        "login.locked": "Too many attempts. Try again in {minutes} minutes.",
        "login.signed_out": "You are signed out.",
        "login.required": "This field is required.",
        "reason.open": "open",
        "reason.outside_hours": "outside your hours",
        "reason.paused": "on a pause",
        "reason.channel_off": "phone line switched off",
        "pager.older": "Older",
        "pager.newest": "Newest",
    },
    it={
        "app.title": "Pannello di controllo dell'esperto",
        "nav.calls": "Chiamate",
        "nav.availability": "Disponibilità",
        "nav.profile": "Le mie tipologie di consulto",
        "nav.consultations": "I miei consulti",
        "nav.admin": "Panoramica del servizio",
        "nav.experts": "Esperti",
        "nav.sign_out": "Esci",
        "nav.skip": "Vai al contenuto",
        "lang.switch": "English",
        "error.forbidden": "Non puoi aprire questa pagina.",
        "error.not_found": "Questa pagina non esiste, oppure non è tua.",
        "error.csrf": "Questo modulo è scaduto. Torna indietro, ricarica la pagina e riprova.",
        "error.title": "Qualcosa non va",
        "error.unavailable": "Il servizio non è disponibile per un momento. Nulla di ciò che"
        " hai fatto è andato perso a metà: riprova tra un minuto.",
        "error.back": "Torna al pannello",
        "form.saved": "Salvato.",
        "form.fix": "Correggi i campi segnalati qui sotto.",
        "login.title": "Accedi",
        "login.email": "Email",
        "login.password": "Password",
        "login.submit": "Accedi",
        "login.wrong": "Email o password errata.",
        "login.locked": "Troppi tentativi. Riprova tra {minutes} minuti.",
        "login.signed_out": "Sei uscito dal pannello.",
        "login.required": "Questo campo è obbligatorio.",
        "reason.open": "aperta",
        "reason.outside_hours": "fuori dal tuo orario",
        "reason.paused": "in pausa",
        "reason.channel_off": "linea telefonica disattivata",
        "pager.older": "Più vecchi",
        "pager.newest": "Più recenti",
    },
)
