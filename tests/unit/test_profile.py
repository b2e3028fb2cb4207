"""The checks of the consultation types page and of the weekly planning form: pure, no
browser."""

from __future__ import annotations

from datetime import time
from decimal import Decimal

import pytest

from ivr_engine.domain.numbers import DialPolicy
from ivr_engine.domain.planning import Slot
from ivr_engine.web.panel.profile import parse_rate, phone_error, rate_error
from ivr_engine.web.panel.slot_form import runs_over

LOW, HIGH = Decimal("0.10"), Decimal("100.00")


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        ("+39 333 123 4567", None),
        ("(06) 1234-5678", None),
        ("3331234567", None),
        ("+39 123", "number.invalid"),
        ("+39 899 123456", "number.type"),
        ("+39 848 123456", "number.type"),
        ("112", "number.emergency"),
        ("+41 44 123 45 67", "number.country"),
        ("call me", "number.format"),
        ("", "number.format"),
        ("+39 333 123 4567 ext 2", "number.format"),
    ],
)
def test_phone_error(typed: str, error: str | None) -> None:
    assert phone_error(typed, DialPolicy()) == error


@pytest.mark.parametrize(
    ("typed", "rate"),
    [
        ("1,80", Decimal("1.80")),
        ("1.80", Decimal("1.80")),
        (" 2 € ", Decimal("2")),
        ("abc", None),
        ("NaN", None),
        ("Infinity", None),
        ("", None),
    ],
)
def test_parse_rate(typed: str, rate: Decimal | None) -> None:
    assert parse_rate(typed) == rate


@pytest.mark.parametrize(
    ("rate", "error"),
    [
        (Decimal("1.80"), None),
        (Decimal("0.10"), None),
        (Decimal("100.00"), None),
        (Decimal("0.09"), "profile.rate.bounds"),
        (Decimal("150"), "profile.rate.bounds"),
        (Decimal("1.234"), "profile.rate.cents"),
        (None, "profile.rate.not_amount"),
    ],
)
def test_rate_error(rate: Decimal | None, error: str | None) -> None:
    assert rate_error(rate, LOW, HIGH) == error


def _slot(start: int, end: int) -> Slot:
    return Slot(time(start), time(end))


def test_runs_over_names_the_day_whose_slot_runs_into_the_next() -> None:
    assert runs_over({6: (_slot(22, 3),), 0: (_slot(1, 5),)}) == 6
    assert runs_over({1: (_slot(22, 2),), 2: (_slot(2, 5),)}) is None
    assert runs_over({0: (_slot(9, 12),), 1: (_slot(0, 5),)}) is None
