"""The experts, as the service's staff manage them: the list, create and edit (with the
expert's panel sign-in), and the accept-by-keypress prompt switch."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from ivr_engine.domain.money import CARTOMANCY, line_type
from ivr_engine.domain.text import control_characters
from ivr_engine.errors import Conflict
from ivr_engine.store import admin as store
from ivr_engine.store.accounts import MIN_PASSWORD
from ivr_engine.web.deps import DEPS
from ivr_engine.web.http import EMAIL
from ivr_engine.web.panel.fields import parse_id, phone_problem, rate_problem, show_rate
from ivr_engine.web.panel.render import money, page, problem, redirect, text
from ivr_engine.web.panel.session import LANG

CATEGORIES = ("general", CARTOMANCY, "legal", "travel", "technical")
LANGUAGES = ("en", "it")
_EMAIL = re.compile(EMAIL)  # the API's rule: one address, nothing a header could split


def _line(request: web.Request, phone: str) -> str:
    return line_type(phone, request.app[DEPS].settings.phone_region).value


async def experts_page(request: web.Request) -> web.Response:
    found = await store.experts(request.app[DEPS].pool)
    lines = {e.id: _line(request, e.fields.phone) for e in found}
    return page(
        request,
        "admin_experts.html",
        experts=found,
        lines=lines,
        categories=CATEGORIES,
        done=request.query.get("done"),
    )


def _categories(current: store.Expert | None) -> tuple[str, ...]:
    """The known categories, plus the expert's own if the API gave them another one."""
    own = current.fields.category if current else CATEGORIES[0]
    return CATEGORIES if own in CATEGORIES else (*CATEGORIES, own)


def _category_name(request: web.Request, category: str) -> str:
    return text(request, f"admin.category.{category}") if category in CATEGORIES else category


def _values(e: store.Expert | None, lang: str) -> dict[str, Any]:
    if e is None:
        return {
            "alias": "",
            "category": "general",
            "phone": "",
            "rate": "",
            "language": lang,
            "email": "",
            "acceptance": True,
        }
    f = e.fields
    return {
        "alias": f.alias,
        "category": f.category,
        "phone": f.phone,
        "rate": show_rate(f.rate, lang),
        "language": f.language,
        "email": f.email,
        "acceptance": f.acceptance_ivr,
    }


def _rate(request: web.Request, raw: str, errors: dict[str, str]) -> Decimal:
    s = request.app[DEPS].settings
    try:
        rate = Decimal(raw.replace(",", "."))
    except InvalidOperation:
        rate = Decimal("NaN")
    if not rate.is_finite():
        errors["rate"] = text(request, "admin.error.rate_format")
        return rate
    problem = rate_problem(rate, s.rate_min, s.rate_max)
    if problem is not None:
        lang = request.get(LANG, "en")
        key = "admin.error.rate_cents" if problem == "cents" else "admin.error.rate_range"
        errors["rate"] = text(
            request, key, low=money(s.rate_min, lang), high=money(s.rate_max, lang)
        )
    return rate


def _read(
    request: web.Request, form: MultiDictProxy[Any], current: store.Expert | None
) -> tuple[dict[str, Any], store.ExpertFields | None, str | None, dict[str, str]]:
    """The form's values as typed, the fields to save (None on error), the new password
    (None: unchanged) and the errors by field."""
    v: dict[str, Any] = {
        k: str(form.get(k, "")).strip()
        for k in ("alias", "category", "phone", "rate", "language", "email")
    }
    v["email"] = v["email"].lower()
    v["acceptance"] = current.fields.acceptance_ivr if current else form.get("acceptance") == "on"
    password = str(form.get("password", "")) or None
    errors: dict[str, str] = {}
    required = text(request, "admin.error.required")
    if not v["alias"]:
        errors["alias"] = required
    elif len(v["alias"]) > 60:
        errors["alias"] = text(request, "admin.error.too_long", n=60)
    elif control_characters(v["alias"]):  # it ends up in emails' Subject
        errors["alias"] = text(request, "admin.error.control")
    if v["category"] not in _categories(current):
        errors["category"] = text(request, "admin.error.choice")
    phone, phone_error = phone_problem(v["phone"], request.app[DEPS].settings.dial_policy)
    if not v["phone"]:
        errors["phone"] = required
    elif phone_error is not None:
        errors["phone"] = text(request, phone_error)
    if v["rate"]:
        rate = _rate(request, v["rate"], errors)
    else:
        rate, errors["rate"] = Decimal(0), required
    if v["language"] not in LANGUAGES:
        errors["language"] = text(request, "admin.error.choice")
    if v["email"] and (len(v["email"]) > 200 or not _EMAIL.fullmatch(v["email"])):
        errors["email"] = text(request, "admin.error.email")
    elif not v["email"] and (password or (current and current.has_login)):
        errors["email"] = text(request, "admin.error.email_needed")
    if password is not None and len(password) < MIN_PASSWORD:
        errors["password"] = text(request, "admin.error.password_short", n=MIN_PASSWORD)
    if errors:
        return v, None, password, errors
    fields = store.ExpertFields(
        alias=v["alias"],
        category=v["category"],
        phone=phone,
        rate=rate,
        language=v["language"],
        email=v["email"],
        acceptance_ivr=bool(v["acceptance"]),
    )
    return v, fields, password, {}


def _form(
    request: web.Request,
    current: store.Expert | None,
    values: dict[str, Any],
    errors: dict[str, str],
    *,
    status: int = 200,
    saved: bool = False,
) -> web.Response:
    line = _line(request, current.fields.phone) if current else None
    return page(
        request,
        "admin_expert_form.html",
        status=status,
        expert=current,
        values=values,
        errors=errors,
        categories=[(c, _category_name(request, c)) for c in _categories(current)],
        line=line,
        rate_min=request.app[DEPS].settings.rate_min,
        rate_max=request.app[DEPS].settings.rate_max,
        saved=saved,
        min_password=MIN_PASSWORD,
    )


async def _find(request: web.Request) -> store.Expert | None:
    raw = request.match_info["expert_id"]
    expert_id = parse_id(raw)
    return None if expert_id is None else await store.expert(request.app[DEPS].pool, expert_id)


async def new_form(request: web.Request) -> web.Response:
    return _form(request, None, _values(None, request.get(LANG, "en")), {})


async def create(request: web.Request) -> web.Response:
    values, fields, password, errors = _read(request, await request.post(), None)
    if fields is not None:
        try:
            await store.create_expert(request.app[DEPS].pool, fields, password)
        except Conflict:
            errors["email"] = text(request, "admin.error.email_taken")
        else:
            return redirect("/admin/experts?done=created")
    return _form(request, None, values, errors, status=422)


async def edit_form(request: web.Request) -> web.Response:
    current = await _find(request)
    if current is None:
        return problem(request, 404, "error.not_found")
    values = _values(current, request.get(LANG, "en"))
    return _form(request, current, values, {}, saved="saved" in request.query)


async def update(request: web.Request) -> web.Response:
    current = await _find(request)
    if current is None:
        return problem(request, 404, "error.not_found")
    values, fields, password, errors = _read(request, await request.post(), current)
    if fields is not None:
        try:
            await store.update_expert(request.app[DEPS].pool, current.id, fields, password)
        except Conflict:
            errors["email"] = text(request, "admin.error.email_taken")
        else:
            return redirect(f"/admin/experts/{current.id}?saved=1")
    return _form(request, current, values, errors, status=422)


async def acceptance(request: web.Request) -> web.Response:
    """Sets the prompt to the state the button showed (not a blind toggle): a double
    click or a stale page cannot flip it back."""
    current = await _find(request)
    if current is None:
        return problem(request, 404, "error.not_found")
    form = await request.post()
    await store.set_acceptance(request.app[DEPS].pool, current.id, form.get("on") == "1")
    if form.get("back") == "edit":
        return redirect(f"/admin/experts/{current.id}?saved=1")
    return redirect("/admin/experts?done=acceptance")
