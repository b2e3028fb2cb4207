"""Which phone numbers the engine may dial.

Every number the engine may call — a client's or an expert's, from the API, the panel or a
call in — goes through :func:`dialable` before it is stored: parsed with ``phonenumbers``
(numbers not written in E.164 are read as numbers of ``DialPolicy.region``), written back
in E.164, and refused unless it is a valid number of an allowed country and of an allowed
type. Emergency and other short numbers (112, 113, 1254…) are refused before anything
else: the engine must never ring them on a client's behalf. A premium-rate number would
let someone earn from the calls the service pays for; shared-cost, toll-free, personal,
pager, UAN and voicemail numbers, and numbers whose type cannot be told, are not phones a
person answers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberType, shortnumberinfo


class NumberType(enum.StrEnum):
    """phonenumbers' number types, by the names the settings use."""

    FIXED = "fixed"
    MOBILE = "mobile"
    FIXED_OR_MOBILE = "fixed_or_mobile"
    VOIP = "voip"
    TOLL_FREE = "toll_free"
    PREMIUM_RATE = "premium_rate"
    SHARED_COST = "shared_cost"
    PERSONAL = "personal_number"
    PAGER = "pager"
    UAN = "uan"
    VOICEMAIL = "voicemail"
    UNKNOWN = "unknown"


_BY_LIBRARY = {
    PhoneNumberType.FIXED_LINE: NumberType.FIXED,
    PhoneNumberType.MOBILE: NumberType.MOBILE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE: NumberType.FIXED_OR_MOBILE,
    PhoneNumberType.VOIP: NumberType.VOIP,
    PhoneNumberType.TOLL_FREE: NumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE: NumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST: NumberType.SHARED_COST,
    PhoneNumberType.PERSONAL_NUMBER: NumberType.PERSONAL,
    PhoneNumberType.PAGER: NumberType.PAGER,
    PhoneNumberType.UAN: NumberType.UAN,
    PhoneNumberType.VOICEMAIL: NumberType.VOICEMAIL,
}
DEFAULT_TYPES = frozenset(
    {NumberType.FIXED, NumberType.MOBILE, NumberType.FIXED_OR_MOBILE, NumberType.VOIP}
)
DEFAULT_COUNTRIES = frozenset({"IT"})


class Refusal(enum.StrEnum):
    """Why a number is refused (the API's ``reason``; the panel's words are keyed by it)."""

    FORMAT = "format"  # not digits with maybe a leading +
    EMERGENCY = "emergency"
    SHORT = "short"  # a short code: directory enquiries, a service number
    INVALID = "invalid"  # no such number in its numbering plan
    COUNTRY = "country"  # a country (or a satellite, international network) not allowed
    TYPE = "type"  # premium rate, shared cost, unknown...


class NumberRefused(ValueError):
    def __init__(self, reason: Refusal, message: str, number_type: NumberType | None = None):
        super().__init__(message)
        self.reason = reason
        self.number_type = number_type


@dataclass(frozen=True)
class DialPolicy:
    region: str = "IT"  # how to read a number not written in E.164
    countries: frozenset[str] = DEFAULT_COUNTRIES  # ISO 3166 codes, as phonenumbers has them
    types: frozenset[NumberType] = DEFAULT_TYPES


_SEPARATORS = str.maketrans("", "", " \t.-/()")


def number_type(number: phonenumbers.PhoneNumber) -> NumberType:
    return _BY_LIBRARY.get(phonenumbers.number_type(number), NumberType.UNKNOWN)


def dialable(raw: str, policy: DialPolicy) -> str:
    """``raw`` as an E.164 number the engine may dial, or NumberRefused with the reason."""
    typed = raw.translate(_SEPARATORS)
    digits = typed.removeprefix("+")
    if not digits.isascii() or not digits.isdigit() or not 3 <= len(digits) <= 17:
        raise NumberRefused(Refusal.FORMAT, "write the number with digits only (and its +)")
    try:
        parsed = phonenumbers.parse(typed, policy.region)
    except phonenumbers.NumberParseException as err:
        raise NumberRefused(Refusal.INVALID, f"{raw} is not a phone number") from err
    # The regions sharing the country code: an invalid number has no region of its own.
    regions = phonenumbers.region_codes_for_country_code(parsed.country_code or 0)
    national = phonenumbers.national_significant_number(parsed)
    if any(shortnumberinfo.connects_to_emergency_number(national, r) for r in regions):
        raise NumberRefused(Refusal.EMERGENCY, f"{raw} is an emergency number")
    if not phonenumbers.is_valid_number(parsed):
        if any(shortnumberinfo.is_valid_short_number_for_region(parsed, r) for r in regions):
            raise NumberRefused(Refusal.SHORT, f"{raw} is a short service number")
        raise NumberRefused(Refusal.INVALID, f"{raw} is not a valid phone number")
    region = phonenumbers.region_code_for_number(parsed) or ""
    if region not in policy.countries:
        where = region if region and region != "001" else "an international network"
        raise NumberRefused(Refusal.COUNTRY, f"{raw} is a number of {where}, not dialled here")
    kind = number_type(parsed)
    if kind not in policy.types:
        raise NumberRefused(Refusal.TYPE, f"{raw} is a {kind.value} number, not dialled", kind)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
