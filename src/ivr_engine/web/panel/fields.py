"""What people type into the panel's forms and URLs, read the same way on every page: ids,
phone numbers (written with spaces, dots or dashes) and rates (shown with a decimal comma in
Italian)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Literal

from ivr_engine.domain.money import check_rate

_BIGINT = 2**63 - 1


def parse_id(raw: str) -> int | None:
    """An id from the URL; None for anything PostgreSQL could not hold as a bigint."""
    if not (raw.isascii() and raw.isdigit()) or int(raw) > _BIGINT:
        return None
    return int(raw)


# What people type between digits; the engine dials digits only, so we drop them first.
_SEPARATORS = re.compile(r"[\s().\-/]")


def clean_phone(raw: str) -> str:
    return _SEPARATORS.sub("", raw)


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
