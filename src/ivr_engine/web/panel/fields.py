"""What people type into the panel's forms and URLs, read the same way on every page: ids,
phone numbers (written with spaces, dots or dashes) and rates (shown with a decimal comma in
Italian)."""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal
from typing import Literal
from urllib.parse import unquote, urlsplit

from ivr_engine.domain.money import check_rate
from ivr_engine.domain.numbers import DialPolicy, NumberRefused, dialable
from ivr_engine.web.panel import i18n

_BIGINT = 2**63 - 1


def parse_id(raw: str) -> int | None:
    """An id from the URL; None for anything PostgreSQL could not hold as a bigint."""
    if not (raw.isascii() and raw.isdigit()) or int(raw) > _BIGINT:
        return None
    return int(raw)


def safe_next(target: str) -> str | None:
    """``target`` if it is a path of this site, else None (no open redirect).

    Browsers drop TAB, CR and LF anywhere in a URL and trim spaces and controls around it,
    and read a backslash as a slash: ``/\t/evil.example`` and ``/\\evil.example`` are
    ``//evil.example``, another site. So any whitespace, control character or backslash
    refuses the target, and so does anything with a scheme or a host, or a path that starts
    with ``//``, also once percent-decoded (``/%2F%2Fevil.example``, ``/%09/…``).
    """
    if not target.startswith("/") or "\\" in target:
        return None
    if any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in target):
        return None
    decoded = unquote(target)
    if decoded.startswith("//") or "\\" in decoded:
        return None
    if any(unicodedata.category(ch).startswith("C") for ch in decoded):  # /%09/…
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return None
    return target


# What people type between digits; the engine dials digits only, so we drop them first.
_SEPARATORS = re.compile(r"[\s().\-/]")


def clean_phone(raw: str) -> str:
    return _SEPARATORS.sub("", raw)


def phone_problem(typed: str, policy: DialPolicy) -> tuple[str, str | None]:
    """(the number in E.164, None) if the engine may dial it, else (what was typed, the text
    key of why not): the same rules as the API's (domain/numbers.py)."""
    try:
        return dialable(clean_phone(typed), policy), None
    except NumberRefused as err:
        return typed, f"number.{err.reason.value}"


def show_rate(rate: Decimal, lang: str) -> str:
    """A rate as a form field shows it: 1.80, or 1,80 in Italian."""
    shown = f"{rate:.2f}"
    return shown.replace(".", ",") if lang == "it" else shown


def rate_problem(rate: Decimal, low: Decimal, high: Decimal) -> Literal["bounds", "cents"] | None:
    """Why the billing would refuse this rate (domain/money.check_rate), or None."""
    try:
        check_rate(rate, low, high)
    except ValueError:
        return "bounds" if not low <= rate <= high else "cents"
    return None


i18n.register(
    en={
        "number.format": "Not a phone number: write it with its country code, e.g."
        " +39 333 123 4567.",
        "number.invalid": "This is not a valid phone number: clients could not be put"
        " through to it.",
        "number.emergency": "This is an emergency number: it is never dialled.",
        "number.short": "This is a short service number: it is never dialled.",
        "number.country": "Numbers of this country are not dialled by the service.",
        "number.type": "This kind of number (premium rate, shared cost, toll free…) cannot"
        " receive calls: give a fixed or mobile number.",
    },
    it={
        "number.format": "Non è un numero di telefono: scrivilo con il prefisso"
        " internazionale, ad es. +39 333 123 4567.",
        "number.invalid": "Questo non è un numero di telefono valido: i clienti non"
        " potrebbero esserti passati.",
        "number.emergency": "Questo è un numero di emergenza: non viene mai chiamato.",
        "number.short": "Questo è un numero breve di servizio: non viene mai chiamato.",
        "number.country": "Il servizio non chiama numeri di questo paese.",
        "number.type": "Questo tipo di numero (tariffa maggiorata, costo ripartito, numero"
        " verde…) non può ricevere chiamate: indica un numero fisso o cellulare.",
    },
)
