"""Server-rendered pages: one Jinja2 environment (autoescaping on), the per-request
context every template gets, and the formats of money, durations and times."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web

from ivr_engine.web.panel import i18n
from ivr_engine.web.panel.session import ACCOUNT, LANG, LOGIN_CSRF

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("ivr_engine.web.panel", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def money(value: Decimal | str | None, lang: str = "en") -> str:
    """Amounts as computed by the billing, never re-rounded: 3.1 shows as 3.10."""
    if value is None:
        return "—"
    amount = Decimal(value)
    text = f"{amount:,.2f}" if amount == amount.quantize(Decimal("0.01")) else f"{amount:,}"
    if lang == "it":
        text = text.replace(",", "_").replace(".", ",").replace("_", ".")
        return f"{text} €"
    return f"€{text}"


def duration(seconds: int | float | None) -> str:
    if seconds is None:
        return "—"
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def local(moment: datetime | None, zone: str = "Europe/Rome", fmt: str = "%Y-%m-%d %H:%M") -> str:
    if moment is None:
        return "—"
    return moment.astimezone(ZoneInfo(zone)).strftime(fmt)


_env.filters["duration"] = duration
_env.filters["local"] = local


def page(request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
    lang = request.get(LANG, "en")
    account = request.get(ACCOUNT)

    def t(key: str, **values: object) -> str:
        return i18n.translate(lang, key, **values)

    html = _env.get_template(template).render(
        t=t,
        lang=lang,
        account=account,
        csrf=account.csrf if account else request.get(LOGIN_CSRF, ""),
        path=request.path,
        now=datetime.now(UTC),
        money=lambda v: money(v, lang),
        **context,
    )
    return web.Response(status=status, text=html, content_type="text/html", charset="utf-8")


def text(request: web.Request, key: str, **values: object) -> str:
    """A text in the reader's language, for handlers (e.g. a field's error message)."""
    return i18n.translate(request.get(LANG, "en"), key, **values)


def problem(request: web.Request, status: int, key: str) -> web.Response:
    """A plain error page (403, 404, CSRF) in the reader's language."""
    return page(request, "error.html", status=status, message_key=key)


def redirect(location: str) -> web.Response:
    """303 See Other: after a POST the browser GETs the result (no resubmit on reload)."""
    return web.Response(status=303, headers={"Location": location})
