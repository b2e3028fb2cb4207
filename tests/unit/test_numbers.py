"""Which numbers the engine may dial (domain/numbers.py), as phonenumbers knows them."""

from __future__ import annotations

import pytest

from ivr_engine.config import Settings
from ivr_engine.domain.numbers import DialPolicy, NumberRefused, NumberType, Refusal, dialable

POLICY = DialPolicy()


@pytest.mark.parametrize(
    ("typed", "e164"),
    [
        ("+390600000101", "+390600000101"),  # the tests' and the demo's numbers
        ("+393330000201", "+393330000201"),
        ("06 9480 1744", "+390694801744"),  # not in E.164: read as an Italian number
        ("0039 333 123 4567", "+393331234567"),
        ("(06) 1234-5678", "+390612345678"),
    ],
)
def test_fixed_and_mobile_numbers_are_written_in_e164(typed: str, e164: str) -> None:
    assert dialable(typed, POLICY) == e164


@pytest.mark.parametrize(
    ("typed", "reason", "kind"),
    [
        ("112", Refusal.EMERGENCY, None),
        ("+39112", Refusal.EMERGENCY, None),
        ("0039113", Refusal.EMERGENCY, None),
        ("118", Refusal.EMERGENCY, None),
        ("+1911", Refusal.EMERGENCY, None),  # another country's, written in full
        ("1254", Refusal.SHORT, None),  # directory enquiries
        ("+39 899 123456", Refusal.TYPE, NumberType.PREMIUM_RATE),
        ("+39 848 123456", Refusal.TYPE, NumberType.SHARED_COST),
        ("+39 800 123456", Refusal.TYPE, NumberType.TOLL_FREE),
        ("+881 6 1234 5678", Refusal.COUNTRY, None),  # a satellite phone
        ("+41 44 123 45 67", Refusal.COUNTRY, None),
        ("+390611", Refusal.INVALID, None),
        ("+39 178 123456", Refusal.INVALID, None),
        ("call me", Refusal.FORMAT, None),
        ("12", Refusal.FORMAT, None),
        ("+39 ٣٣٣ 1234567", Refusal.FORMAT, None),  # digits, but not ASCII ones
    ],
)
def test_numbers_nobody_may_dial_are_refused_with_the_reason(
    typed: str, reason: Refusal, kind: NumberType | None
) -> None:
    with pytest.raises(NumberRefused) as refused:
        dialable(typed, POLICY)
    assert refused.value.reason is reason, str(refused.value)
    assert refused.value.number_type is kind


def test_the_settings_choose_the_countries_and_the_types() -> None:
    swiss = "+41 44 123 45 67"
    settings = Settings(
        database_url="x",
        ari_password="x",
        ami_secret="x",
        api_token="x",
        link_secret="x",
        dial_countries="IT, CH",  # as the environment gives it
        dial_number_types="mobile",
    )
    policy = settings.dial_policy
    assert dialable(swiss.replace("44", "79"), policy) == "+41791234567"
    with pytest.raises(NumberRefused, match="fixed"):
        dialable(swiss, policy)
    with pytest.raises(ValueError, match="XX"):
        Settings(**{**settings.model_dump(), "dial_countries": ("XX",)})
