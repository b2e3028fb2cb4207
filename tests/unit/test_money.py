import re
from decimal import Decimal

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberType

from ivr_engine.domain import money
from ivr_engine.domain.money import (
    FULL,
    HALVED,
    LINE_TYPE_BY_NUMBER_TYPE,
    WAIVED,
    Bill,
    LineType,
    Tariff,
    charged_seconds,
    check_rate,
    compute_bill,
    line_type,
    make_tariff,
    round_money,
    transfer_rule,
)

D = Decimal
MOBILE_IT = "+393331234567"
FIXED_IT = "+390212345678"
US_CANNOT_TELL = "+12015550123"  # FIXED_LINE_OR_MOBILE


def tariff(
    rate: str = "1.50",
    *,
    category: str = "astrology",
    number: str = MOBILE_IT,
    commission: str = "0",
    granularity: int = 1,
    minimum: int = 0,
) -> Tariff:
    return make_tariff(
        rate=D(rate),
        category=category,
        expert_number=number,
        region="IT",
        mobile_cost=D("0.20"),
        fixed_cost=D("0.01"),
        commission_percent=D(commission),
        granularity_seconds=granularity,
        minimum_seconds=minimum,
    )


def amounts(bill: Bill) -> tuple[str, str, str, str]:
    """(price, transfer cost, commission, earnings) as the API shows them."""
    return (
        str(bill.client_price),
        str(bill.transfer_cost),
        str(bill.commission),
        str(bill.earnings),
    )


# --- rounding ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "rounded"),
    [("0.005", "0.01"), ("0.125", "0.13"), ("2.675", "2.68"), ("0.0049999", "0.00"), ("3", "3.00")],
)
def test_round_money_is_half_up_to_the_cent(amount: str, rounded: str) -> None:
    assert str(round_money(D(amount))) == rounded


def test_half_a_cent_is_rounded_up_not_to_even() -> None:
    # 0.10 €/min for 3 s = 0.30 / 60 = 0.005 exactly; banker's rounding would give 0.00.
    assert compute_bill(tariff("0.10", number=FIXED_IT), 3).client_price == D("0.01")


# --- rates ------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", ["0.10", "1.50", "100.00", "2", "1.500"])
def test_check_rate_accepts_whole_cents_in_range(rate: str) -> None:
    check_rate(D(rate), D("0.10"), D("100.00"))


@pytest.mark.parametrize(
    ("rate", "message"),
    [
        (D("1.505"), "below the cent"),
        (D("1.0000000000000000000000000000001"), "below the cent"),
        (D("0.09"), "outside"),
        (D("100.01"), "outside"),
        (D("-1.00"), "outside"),
        (D("NaN"), "finite Decimal"),
        (D("Infinity"), "finite Decimal"),
        (1.5, "finite Decimal"),
    ],
)
def test_check_rate_refuses(rate: Decimal, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_rate(rate, D("0.10"), D("100.00"))


# --- transfer rule ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "rate", "rule"),
    [
        ("cartomancy", "1.74", FULL),
        ("cartomancy", "1.75", HALVED),
        ("cartomancy", "1.99", HALVED),
        ("cartomancy", "2.00", FULL),  # in neither band: full cost
        ("cartomancy", "2.01", WAIVED),
        ("cartomancy", "100.00", WAIVED),
        ("astrology", "2.50", FULL),
        ("astrology", "1.80", FULL),
        ("Cartomancy", "2.50", FULL),  # categories are exact identifiers
    ],
)
def test_transfer_rule_bands(category: str, rate: str, rule: money.TransferRule) -> None:
    assert transfer_rule(category, D(rate)) == rule


def test_rule_descriptions_are_plain_text() -> None:
    assert FULL.description == "full transfer cost"
    assert HALVED.description == "cartomancy rate 1.75–1.99 €/min: halved"
    assert WAIVED.description == "cartomancy rate > 2.00 €/min: waived"
    assert (FULL.factor, HALVED.factor, WAIVED.factor) == (D(1), D("0.5"), D(0))


def test_transfer_rule_refuses_sub_cent_rates() -> None:
    with pytest.raises(ValueError):
        transfer_rule("cartomancy", D("1.995"))


# --- line types -------------------------------------------------------------------------------

# Italy's own examples where it has one; other regions for the types Italy lacks.
LINE_TYPE_CASES = [
    ("IT", "FIXED_LINE", LineType.FIXED),
    ("IT", "MOBILE", LineType.MOBILE),
    ("US", "FIXED_LINE_OR_MOBILE", LineType.MOBILE),
    ("IT", "TOLL_FREE", LineType.FIXED),
    ("IT", "PREMIUM_RATE", LineType.MOBILE),
    ("IT", "SHARED_COST", LineType.MOBILE),
    ("IT", "VOIP", LineType.FIXED),
    ("IT", "PERSONAL_NUMBER", LineType.MOBILE),
    ("GB", "PAGER", LineType.MOBILE),
    ("GB", "UAN", LineType.FIXED),
    ("IT", "VOICEMAIL", LineType.MOBILE),
]


@pytest.mark.parametrize(("region", "type_name", "expected"), LINE_TYPE_CASES)
def test_line_type_of_every_phone_number_type(
    region: str, type_name: str, expected: LineType
) -> None:
    kind = getattr(PhoneNumberType, type_name)
    example = phonenumbers.example_number_for_type(region, kind)
    assert example is not None
    assert phonenumbers.number_type(example) == kind  # the example really is of that type
    e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    assert line_type(e164) == expected
    national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
    assert line_type(national, region) == expected


@pytest.mark.parametrize("number", ["+3912", "", "hello", "+999 123", "12", "++39333"])
def test_unknown_or_invalid_numbers_are_charged_as_mobile(number: str) -> None:
    assert line_type(number) == LineType.MOBILE


def test_national_numbers_use_the_region() -> None:
    assert line_type("333 123 4567") == LineType.MOBILE
    assert line_type("02 1234 5678") == LineType.FIXED
    assert line_type(MOBILE_IT, "GB") == LineType.MOBILE  # E.164 ignores the region


def test_every_phone_number_type_is_mapped_and_documented() -> None:
    assert set(LINE_TYPE_BY_NUMBER_TYPE) == set(PhoneNumberType.values())
    assert {name for _, name, _ in LINE_TYPE_CASES} | {"UNKNOWN"} == {
        PhoneNumberType.to_string(v) for v in PhoneNumberType.values()
    }
    doc = money.__doc__ or ""
    for value, kind in LINE_TYPE_BY_NUMBER_TYPE.items():
        name = PhoneNumberType.to_string(value)
        assert re.search(rf"^\s+{name}\s+{kind}\s", doc, re.MULTILINE), name
    assert str(LineType.MOBILE) == "mobile" and str(LineType.FIXED) == "fixed"


# --- charged time -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("billed", "granularity", "minimum", "charged"),
    [
        (0, 1, 0, 0),
        (0, 60, 30, 0),  # never bridged: the minimum does not apply
        (1, 1, 0, 1),
        (1, 60, 30, 60),
        (60, 60, 30, 60),
        (61, 60, 30, 120),
        (10, 1, 30, 30),
        (45, 1, 30, 45),
        (10, 60, 90, 120),  # minimum first, then whole units
    ],
)
def test_charged_seconds(billed: int, granularity: int, minimum: int, charged: int) -> None:
    assert charged_seconds(billed, granularity, minimum) == charged


def test_charged_seconds_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        charged_seconds(-1, 1, 0)
    with pytest.raises(ValueError):
        charged_seconds(10, 0, 0)


# --- bills ------------------------------------------------------------------------------------


def test_worked_example() -> None:
    # 1.50 €/min x 125 s = 187.50 / 60 = 3.125      -> 3.13 (half up)
    # mobile 0.20 €/min x 125 s = 25.00 / 60 = 0.4166… -> 0.42
    # earnings 3.13 - 0.42 - 0.00 = 2.71
    bill = compute_bill(tariff("1.50"), 125)
    assert bill.charged_seconds == 125
    assert amounts(bill) == ("3.13", "0.42", "0.00", "2.71")
    assert bill.as_json() == {
        "billed_seconds": 125,
        "charged_seconds": 125,
        "client_price": "3.13",
        "transfer_cost": "0.42",
        "commission": "0.00",
        "earnings": "2.71",
        "rule": "full transfer cost",
        "note": "",
    }


def test_zero_duration_costs_nothing_even_with_a_minimum() -> None:
    bill = compute_bill(tariff("5.00", granularity=60, minimum=30, commission="20"), 0)
    assert bill.charged_seconds == 0
    assert amounts(bill) == ("0.00", "0.00", "0.00", "0.00")
    assert bill.note == ""


def test_ten_hours_halved_cartomancy() -> None:
    # 1.99 x 600 min = 1194.00; 0.20 x 0.5 x 600 = 60.00; 1194.00 - 60.00 = 1134.00
    bill = compute_bill(tariff("1.99", category="cartomancy"), 36_000)
    assert amounts(bill) == ("1194.00", "60.00", "0.00", "1134.00")
    assert bill.rule == "cartomancy rate 1.75–1.99 €/min: halved"


def test_granularity_and_minimum() -> None:
    # 61 s in 60 s units -> 120 s: 1.50 x 2 = 3.00; fixed 0.01 x 2 = 0.02
    t = tariff("1.50", number=FIXED_IT, granularity=60, minimum=30)
    assert amounts(compute_bill(t, 61)) == ("3.00", "0.02", "0.00", "2.98")
    # 5 s -> 60 s: the minimum (30 s) is then rounded up to the unit
    assert amounts(compute_bill(t, 5)) == ("1.50", "0.01", "0.00", "1.49")


def test_commission_is_taken_from_the_rounded_price() -> None:
    # price 3.13 (see worked example); 20 % = 0.626 -> 0.63; 3.13 - 0.42 - 0.63 = 2.08
    bill = compute_bill(tariff("1.50", commission="20"), 125)
    assert amounts(bill) == ("3.13", "0.42", "0.63", "2.08")


def test_waived_transfer_cost() -> None:
    bill = compute_bill(tariff("2.01", category="cartomancy"), 60)
    assert amounts(bill) == ("2.01", "0.00", "0.00", "2.01")
    assert bill.rule == "cartomancy rate > 2.00 €/min: waived"


def test_transfer_cost_is_capped_so_earnings_are_not_negative() -> None:
    # 0.10 €/min on a mobile: the full transfer cost (0.20) is above the price (0.10).
    bill = compute_bill(tariff("0.10"), 60)
    assert amounts(bill) == ("0.10", "0.10", "0.00", "0.00")
    assert bill.note == (
        "transfer cost capped at 0.10 € instead of 0.20 € so that earnings are not negative"
    )
    # With commission, the commission is kept whole and the transfer cost takes what is left.
    bill = compute_bill(tariff("0.10", commission="50"), 60)
    assert amounts(bill) == ("0.10", "0.05", "0.05", "0.00")
    assert "capped at 0.05 € instead of 0.20 €" in bill.note


def test_tariff_is_frozen_from_the_expert_number() -> None:
    t = tariff("1.80", category="cartomancy", number=FIXED_IT, commission="12.5")
    assert (t.line_type, t.transfer_per_minute, t.rule) == (LineType.FIXED, D("0.01"), HALVED)
    assert tariff(number=US_CANNOT_TELL).transfer_per_minute == D("0.20")


@pytest.mark.parametrize(
    "changes",
    [
        {"rate": D("1.505")},
        {"rate": D("-1.00")},
        {"commission_percent": D("100.01")},
        {"transfer_per_minute": D("-0.01")},
        {"rule": money.TransferRule(D("1.5"), "more than the cost")},
        {"granularity_seconds": 0},
        {"minimum_seconds": -1},
    ],
)
def test_tariff_refuses_nonsense(changes: dict[str, object]) -> None:
    fields = {**tariff().__dict__, **changes}
    with pytest.raises(ValueError):
        Tariff(**fields)


# --- properties -------------------------------------------------------------------------------

rates = st.integers(min_value=10, max_value=10_000).map(lambda cents: D(cents).scaleb(-2))
categories = st.one_of(
    st.just("cartomancy"), st.sampled_from(["astrology", "tarot", ""]), st.text()
)
numbers = st.sampled_from([MOBILE_IT, FIXED_IT, US_CANNOT_TELL, "not a number"])
seconds = st.integers(min_value=0, max_value=36_000)
commissions = st.decimals(min_value=0, max_value=100, places=2)
granularities = st.sampled_from([1, 6, 30, 60])
minimums = st.sampled_from([0, 10, 30, 60, 90])


@st.composite
def tariffs(draw: st.DrawFn) -> Tariff:
    return make_tariff(
        rate=draw(rates),
        category=draw(categories),
        expert_number=draw(numbers),
        region="IT",
        mobile_cost=D("0.20"),
        fixed_cost=D("0.01"),
        commission_percent=draw(commissions),
        granularity_seconds=draw(granularities),
        minimum_seconds=draw(minimums),
    )


@settings(max_examples=200, deadline=None)
@given(tariffs(), seconds)
def test_bill_properties(t: Tariff, billed: int) -> None:
    bill = compute_bill(t, billed)
    assert bill.earnings >= 0
    assert bill.client_price == round_money(t.rate * bill.charged_seconds / 60)
    assert bill.client_price == bill.transfer_cost + bill.commission + bill.earnings
    for amount in (bill.client_price, bill.transfer_cost, bill.commission, bill.earnings):
        assert amount.as_tuple().exponent == -2
    assert compute_bill(t, billed) == bill  # deterministic
    assert bill.charged_seconds >= billed and (billed > 0) == (bill.charged_seconds > 0)


@settings(max_examples=200, deadline=None)
@given(rates, categories)
def test_transfer_factor_properties(rate: Decimal, category: str) -> None:
    rule = transfer_rule(category, rate)
    cartomancy = category == "cartomancy"
    assert (rule.factor == 0) == (cartomancy and rate > D("2.00"))
    assert (rule.factor == D("0.5")) == (cartomancy and D("1.75") <= rate <= D("1.99"))
    assert rule.factor in (0, D("0.5"), 1)


@settings(max_examples=200, deadline=None)
@given(tariffs(), seconds, seconds)
def test_price_is_monotonic_in_seconds(t: Tariff, a: int, b: int) -> None:
    short, long = sorted((a, b))
    assert compute_bill(t, short).client_price <= compute_bill(t, long).client_price
