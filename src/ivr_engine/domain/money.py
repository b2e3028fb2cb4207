"""Money of a consultation: expert rates, line types, transfer cost and the bill.

Pure: no I/O. Amounts are EUR as `Decimal`. The one rounding rule is `round_money` (to the
cent, half up); it is applied once at the end of each figure of a bill, never per minute.

The transfer cost is paid by the expert and depends on the line type of the number the expert
receives calls on. The principle: the expert pays what the call really costs the platform, and
when phonenumbers cannot tell what the line is, the call is charged as mobile, the dearer one.

    PhoneNumberType       LineType  why
    FIXED_LINE            fixed     a geographic line
    MOBILE                mobile    a mobile line
    FIXED_LINE_OR_MOBILE  mobile    cannot tell (e.g. US numbers): charged as mobile
    TOLL_FREE             fixed     free or local rate for the caller: never dearer than fixed
    PREMIUM_RATE          mobile    dearer than anything: charged at the dearest rate we have
    SHARED_COST           mobile    the caller pays above the geographic rate: charged as mobile
    VOIP                  fixed     terminated at geographic (fixed-line) rates
    PERSONAL_NUMBER       mobile    forwarded anywhere, often to a mobile: charged as mobile
    PAGER                 mobile    a mobile-network service
    UAN                   fixed     company numbers billed like a geographic call
    VOICEMAIL             mobile    mobile operators' voicemail access
    UNKNOWN               mobile    cannot tell: charged as mobile
    invalid, unparseable  mobile    cannot tell: charged as mobile

Premium-rate numbers would let an expert earn twice from one call: they should be refused where
experts register their number; this module only prices what it is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from enum import StrEnum
from types import MappingProxyType
from typing import Final

import phonenumbers
from phonenumbers import PhoneNumberType

CENT: Final = Decimal("0.01")
CARTOMANCY: Final = "cartomancy"
WAIVE_ABOVE: Final = Decimal("2.00")
HALVE_FROM: Final = Decimal("1.75")
HALVE_TO: Final = Decimal("1.99")

# Intermediate figures are `per_minute * seconds / 60`. With 50 digits the product is exact and
# the division errs only far below the cent, while the exact value is either exactly on a
# half cent or at least 1/60 of the inputs' last digit away from it: rounding once at the end
# gives the same result as exact rational arithmetic. Fixed here so that the caller's decimal
# context (precision, rounding) can never change a bill.
_EXACT: Final = Context(prec=50)


def round_money(amount: Decimal) -> Decimal:
    """THE rounding rule: to the cent, half up (0.005 -> 0.01, as a customer expects)."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP, context=_EXACT)


def _for_seconds(per_minute: Decimal, seconds: int) -> Decimal:
    """Exact (unrounded) amount of `seconds` at `per_minute`, pro rata per second."""
    with localcontext(_EXACT):
        return per_minute * seconds / 60


def _whole_cents(value: Decimal) -> bool:
    # Read the digits rather than quantize: quantize obeys a context precision and could
    # round 1.0000…01 to 1.00 or raise on a huge value instead of answering.
    _sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        return False
    below_cent = -exponent - 2
    return below_cent <= 0 or not any(digits[-below_cent:])


def _check_cents(what: str, value: Decimal) -> None:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValueError(f"{what} must be a finite Decimal amount in EUR, got {value!r}")
    if not _whole_cents(value):
        raise ValueError(f"{what} {value} has digits below the cent; use whole cents like 1.50")


def check_rate(rate: Decimal, minimum: Decimal, maximum: Decimal) -> None:
    """Refuse a per-minute rate an expert may not set: whole cents within [minimum, maximum]."""
    _check_cents("rate", rate)
    if not minimum <= rate <= maximum:
        raise ValueError(f"rate {rate} €/min is outside the allowed {minimum}–{maximum} €/min")


class LineType(StrEnum):
    MOBILE = "mobile"
    FIXED = "fixed"


_CANNOT_TELL: Final = LineType.MOBILE

LINE_TYPE_BY_NUMBER_TYPE: Final[Mapping[int, LineType]] = MappingProxyType(
    {
        PhoneNumberType.FIXED_LINE: LineType.FIXED,
        PhoneNumberType.MOBILE: LineType.MOBILE,
        PhoneNumberType.FIXED_LINE_OR_MOBILE: _CANNOT_TELL,
        PhoneNumberType.TOLL_FREE: LineType.FIXED,
        PhoneNumberType.PREMIUM_RATE: LineType.MOBILE,
        PhoneNumberType.SHARED_COST: LineType.MOBILE,
        PhoneNumberType.VOIP: LineType.FIXED,
        PhoneNumberType.PERSONAL_NUMBER: LineType.MOBILE,
        PhoneNumberType.PAGER: LineType.MOBILE,
        PhoneNumberType.UAN: LineType.FIXED,
        PhoneNumberType.VOICEMAIL: LineType.MOBILE,
        PhoneNumberType.UNKNOWN: _CANNOT_TELL,
    }
)


def line_type(number: str, region: str = "IT") -> LineType:
    """Line type of an E.164 number, or of a national one written for `region`."""
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return _CANNOT_TELL
    if not phonenumbers.is_valid_number(parsed):
        return _CANNOT_TELL
    # .get: a type added by a future phonenumbers release is one we cannot tell yet.
    return LINE_TYPE_BY_NUMBER_TYPE.get(phonenumbers.number_type(parsed), _CANNOT_TELL)


@dataclass(frozen=True)
class TransferRule:
    """Share of the transfer cost the expert pays, and why, in words fit for an email."""

    factor: Decimal
    description: str


FULL: Final = TransferRule(Decimal(1), "full transfer cost")
HALVED: Final = TransferRule(
    Decimal("0.5"), f"{CARTOMANCY} rate {HALVE_FROM}–{HALVE_TO} €/min: halved"
)
WAIVED: Final = TransferRule(Decimal(0), f"{CARTOMANCY} rate > {WAIVE_ABOVE} €/min: waived")


def transfer_rule(category: str, rate: Decimal) -> TransferRule:
    """The service's rule; exactly 2.00 €/min is in neither cartomancy band, so pays in full."""
    _check_cents("rate", rate)
    if category != CARTOMANCY:
        return FULL
    if rate > WAIVE_ABOVE:
        return WAIVED
    if HALVE_FROM <= rate <= HALVE_TO:
        return HALVED
    return FULL


def charged_seconds(billed: int, granularity: int, minimum: int) -> int:
    """Billed seconds raised to the minimum, then rounded up to whole billing units.

    A consultation never bridged (0 s) costs nothing: the minimum is for calls that happened.
    The minimum is applied before rounding so every charge is a whole number of units.
    """
    if billed < 0 or granularity < 1 or minimum < 0:
        raise ValueError(f"bad billing time: {billed=} {granularity=} {minimum=}")
    if billed == 0:
        return 0
    seconds = max(billed, minimum)
    return -(-seconds // granularity) * granularity


@dataclass(frozen=True)
class Tariff:
    """What a consultation freezes when it starts; with the billed seconds it fixes the bill.

    Checked here rather than in `make_tariff` because tariffs are also rebuilt from stored rows.
    The rate is not checked against today's min/max: it was valid when the expert set it.
    """

    rate: Decimal
    category: str
    line_type: LineType
    transfer_per_minute: Decimal  # for this line type, before the rule
    rule: TransferRule
    commission_percent: Decimal
    granularity_seconds: int
    minimum_seconds: int

    def __post_init__(self) -> None:
        _check_cents("rate", self.rate)
        _check_between("rate", self.rate, Decimal(0), None)
        _check_between("transfer cost per minute", self.transfer_per_minute, Decimal(0), None)
        _check_between("transfer factor", self.rule.factor, Decimal(0), Decimal(1))
        _check_between("commission percent", self.commission_percent, Decimal(0), Decimal(100))
        if self.granularity_seconds < 1 or self.minimum_seconds < 0:
            raise ValueError(
                f"billing granularity must be >= 1 s and minimum >= 0 s, got "
                f"{self.granularity_seconds} s and {self.minimum_seconds} s"
            )


def _check_between(what: str, value: Decimal, low: Decimal, high: Decimal | None) -> None:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValueError(f"{what} must be a finite Decimal, got {value!r}")
    if value < low:
        raise ValueError(f"{what} {value} is below {low}")
    if high is not None and value > high:
        raise ValueError(f"{what} {value} is above {high}")


def make_tariff(
    *,
    rate: Decimal,
    category: str,
    expert_number: str,
    region: str,
    mobile_cost: Decimal,
    fixed_cost: Decimal,
    commission_percent: Decimal,
    granularity_seconds: int,
    minimum_seconds: int,
) -> Tariff:
    kind = line_type(expert_number, region)
    return Tariff(
        rate=rate,
        category=category,
        line_type=kind,
        transfer_per_minute=mobile_cost if kind is LineType.MOBILE else fixed_cost,
        rule=transfer_rule(category, rate),
        commission_percent=commission_percent,
        granularity_seconds=granularity_seconds,
        minimum_seconds=minimum_seconds,
    )


@dataclass(frozen=True)
class Bill:
    billed_seconds: int
    charged_seconds: int
    client_price: Decimal
    transfer_cost: Decimal  # what the expert pays, after the rule and any cap
    commission: Decimal
    earnings: Decimal
    rule: str
    note: str = ""  # set when the transfer cost was capped

    def as_json(self) -> dict[str, str | int]:
        return {
            "billed_seconds": self.billed_seconds,
            "charged_seconds": self.charged_seconds,
            "client_price": str(self.client_price),
            "transfer_cost": str(self.transfer_cost),
            "commission": str(self.commission),
            "earnings": str(self.earnings),
            "rule": self.rule,
            "note": self.note,
        }


def compute_bill(tariff: Tariff, billed_seconds: int) -> Bill:
    """The bill of a consultation; every figure is rounded once, from exact amounts.

    Earnings are never negative: commission cannot exceed the price (at most 100 % of it), so
    when the transfer cost would eat more than what is left, the expert is charged only what is
    left and the bill's note says so. The platform absorbs the rest of that call's cost.
    """
    charged = charged_seconds(billed_seconds, tariff.granularity_seconds, tariff.minimum_seconds)
    with localcontext(_EXACT):
        price = round_money(_for_seconds(tariff.rate, charged))
        commission = round_money(price * tariff.commission_percent / 100)
        per_minute = tariff.transfer_per_minute * tariff.rule.factor
        full_transfer = round_money(_for_seconds(per_minute, charged))
        transfer = min(full_transfer, price - commission)
        earnings = price - transfer - commission
    note = ""
    if transfer < full_transfer:
        note = (
            f"transfer cost capped at {transfer} € instead of {full_transfer} € "
            "so that earnings are not negative"
        )
    return Bill(
        billed_seconds=billed_seconds,
        charged_seconds=charged,
        client_price=price,
        transfer_cost=transfer,
        commission=commission,
        earnings=earnings,
        rule=tariff.rule.description,
        note=note,
    )
