"""The outbox emails rendered in English and Italian (their words: mail/words.py): plain text.

``render`` is pure: the sender gives it the row's payload (amounts as strings, dates as ISO
8601 with an offset) and, for a missed call, the signed link. Amounts are shown as they were
computed by the billing: formatting adds zeros up to cents but never rounds.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ivr_engine.errors import TemplateError
from ivr_engine.mail.words import EN, IT, LANGUAGES, Language

__all__ = ["EN", "IT", "LANGUAGES", "Language", "duration", "money", "render", "when"]


def render(
    kind: str,
    language: str,
    payload: Mapping[str, Any],
    *,
    solicit_url: str | None,
    link_expires: datetime | None = None,
) -> tuple[str, str]:
    """(subject, plain-text body) of an outbox email; an unknown language gets English."""
    renderer = _RENDERERS.get(kind)
    if renderer is None:
        raise TemplateError(f"no template for email kind {kind!r}")
    lang = LANGUAGES.get(language.lower(), EN)
    return renderer(lang, _Payload(kind, payload), solicit_url, link_expires)


class _Payload:
    """Field access that names the kind and the field when the engine wrote a bad row."""

    def __init__(self, kind: str, data: Mapping[str, Any]) -> None:
        self.kind = kind
        self.data = data

    def text(self, name: str, default: str | None = None) -> str:
        value = self.data.get(name, default)
        if value is None:
            raise TemplateError(f"{self.kind} payload has no {name!r}")
        return str(value)

    def amount(self, name: str) -> Decimal:
        raw = self.text(name)
        try:
            value = Decimal(raw)
        except InvalidOperation as err:
            raise TemplateError(f"{self.kind} payload: {name}={raw!r} is not an amount") from err
        if not value.is_finite():
            raise TemplateError(f"{self.kind} payload: {name}={raw!r} is not an amount")
        return value

    def seconds(self, name: str) -> int:
        raw = self.text(name)
        try:
            return int(raw)
        except ValueError as err:
            raise TemplateError(f"{self.kind} payload: {name}={raw!r} is not seconds") from err

    def moment(self, name: str) -> datetime:
        raw = self.text(name)
        try:
            value = datetime.fromisoformat(raw)
        except ValueError as err:
            raise TemplateError(f"{self.kind} payload: {name}={raw!r} is not a date") from err
        if value.tzinfo is None:
            raise TemplateError(f"{self.kind} payload: {name}={raw!r} has no timezone")
        return value


Renderer = Callable[[Language, _Payload, str | None, datetime | None], tuple[str, str]]


def money(lang: Language, value: Decimal) -> str:
    """``€1,234.50`` or ``1.234,50 €``; cents always shown, sub-cent digits kept."""
    places = max(2, -int(value.as_tuple().exponent))
    grouped = f"{abs(value):,.{places}f}"  # exact for Decimal: only zeros are added
    number = grouped.translate(str.maketrans(",.", lang.thousands + lang.decimal_point))
    sign = "-" if value < 0 else ""
    return f"{sign}€{number}" if lang.euro_first else f"{sign}{number} €"


def when(lang: Language, moment: datetime) -> str:
    """``12 March 2024 at 14:05:09 UTC+01:00``: the offset is kept, never converted."""
    offset = moment.strftime("%z")
    zone = "UTC" if offset in ("+0000", "-0000") else f"UTC{offset[:3]}:{offset[3:]}"
    month = lang.months[moment.month - 1]
    return f"{moment.day} {month} {moment.year} {lang.at} {moment:%H:%M:%S} {zone}"


def duration(seconds: int) -> str:
    minutes, rest = divmod(seconds, 60)
    if not minutes:
        return f"{seconds} s"
    return f"{seconds} s ({minutes} min {rest} s)" if rest else f"{seconds} s ({minutes} min)"


def _earnings(
    lang: Language, p: _Payload, _url: str | None, _expires: datetime | None
) -> tuple[str, str]:
    t = lang.text
    client, earnings = p.text("client_alias"), money(lang, p.amount("earnings"))
    line = p.text("line_type")
    rule = p.text("transfer_rule", "")
    transfer = money(lang, p.amount("transfer_cost")) + (f" ({rule})" if rule else "")
    rows = [
        (t["start"], when(lang, p.moment("start"))),
        (t["end"], when(lang, p.moment("end"))),
        (t["billed"], duration(p.seconds("billed_seconds"))),
        (t["charged"], duration(p.seconds("charged_seconds"))),
        (t["rate"], money(lang, p.amount("rate")) + "/min"),
        (t["price"], money(lang, p.amount("client_price"))),
        (t["line"], lang.line_types.get(line, line)),
        (t["transfer"], transfer),
        (t["commission"], money(lang, p.amount("commission"))),
        (t["earnings"], earnings),
    ]
    width = max(len(label) for label, _ in rows) + 2
    table = "\n".join(f"{label + ':':<{width}}{value}" for label, value in rows)
    intro = t["earnings.intro"].format(
        expert=p.text("expert_alias"), id=p.text("consultation_id"), client=client
    )
    note = p.text("note", "").strip()
    parts = [_wrap(intro), table]
    if note:
        parts.append(_wrap(f"{t['note']}: {note}"))
    parts.append(t["earnings.outro"] + "\n")
    return t["earnings.subject"].format(client=client, earnings=earnings), "\n\n".join(parts)


def _missed(
    lang: Language, p: _Payload, url: str | None, expires: datetime | None
) -> tuple[str, str]:
    if not url or expires is None:
        raise TemplateError("expert_missed_call needs the solicit link and its expiry")
    client = p.text("client_alias")
    body = lang.text["missed.body"].format(
        client=client,
        attempt=p.text("attempt"),
        reason=_reason(lang, p),
        url=url,
        expires=when(lang, expires),
    )
    return lang.text["missed.subject"].format(client=client), _wrap(body)


def _lost(
    lang: Language, p: _Payload, _url: str | None, _expires: datetime | None
) -> tuple[str, str]:
    client = p.text("client_alias")
    body = lang.text["lost.body"].format(
        client=client, attempt=p.text("attempt"), reason=_reason(lang, p)
    )
    return lang.text["lost.subject"].format(client=client), _wrap(body)


def _wrap(text: str) -> str:
    """Fill prose paragraphs to 72 columns, as mail readers expect of plain text.

    A paragraph holding a link is left whole: a broken URL cannot be clicked.
    """
    paragraphs = text.strip("\n").split("\n\n")
    filled = [
        p if "://" in p else "\n".join(textwrap.fill(line, 72) for line in p.split("\n"))
        for p in paragraphs
    ]
    return "\n\n".join(filled) + "\n"


def _reason(lang: Language, p: _Payload) -> str:
    return lang.reasons.get(p.text("reason", ""), lang.text["reason.other"])


def _refused(
    lang: Language, p: _Payload, _url: str | None, _expires: datetime | None
) -> tuple[str, str]:
    expert = p.text("expert_alias")
    body = lang.text["refused.body"].format(client=p.text("client_alias"), expert=expert)
    if p.text("proposed_start", ""):
        body += "\n\n" + lang.text["refused.proposal"].format(
            when=when(lang, p.moment("proposed_start"))
        )
    return lang.text["refused.subject"].format(expert=expert), _wrap(body)


def _message(
    lang: Language, p: _Payload, _url: str | None, _expires: datetime | None
) -> tuple[str, str]:
    """An expert's message to a client, quoted as typed (the expert's words are never
    passed through ``format``: braces in them are plain text)."""
    expert, t = p.text("expert_alias"), lang.text
    intro = t["message.intro"].format(client=p.text("client_alias"), expert=expert)
    quoted = "\n".join(_quote(line) for line in p.text("message").strip().split("\n"))
    outro = t["message.outro"].format(expert=expert)
    body = f"{_wrap(intro)}\n{quoted}\n\n{_wrap(outro)}"
    return t["message.subject"].format(expert=expert), body


def _quote(line: str) -> str:
    """One line of a quoted text, filled to 72 columns; a long word (a link) stays whole."""
    if not line.strip():
        return ">"
    return textwrap.fill(
        line,
        72,
        initial_indent="> ",
        subsequent_indent="> ",
        break_long_words=False,
        break_on_hyphens=False,
    )


def _pin_locked(
    lang: Language, p: _Payload, _url: str | None, _expires: datetime | None
) -> tuple[str, str]:
    body = lang.text["pin_locked.body"].format(
        expert=p.text("expert_alias"),
        wrong=p.text("wrong_pins"),
        until=when(lang, p.moment("locked_until")),
    )
    return lang.text["pin_locked.subject"], _wrap(body)


def _closed(
    lang: Language, p: _Payload, _url: str | None, _expires: datetime | None
) -> tuple[str, str]:
    """A client's request ended without a consultation: expired, or nobody would take it."""
    reason = p.text("reason")
    text = lang.text.get(f"closed.{reason}")
    if text is None:
        raise TemplateError(f"client_request_closed: unknown reason {reason!r}")
    return lang.text["closed.subject"], _wrap(text.format(client=p.text("client_alias")))


_RENDERERS: dict[str, Renderer] = {
    "client_request_closed": _closed,
    "client_message": _message,
    "client_request_refused": _refused,
    "consultation_earnings": _earnings,
    "expert_missed_call": _missed,
    "expert_missed_request_lost": _lost,
    "expert_pin_locked": _pin_locked,
}
